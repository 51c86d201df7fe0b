//! Runs a compiled phone pattern (see `bytecode.rs`) against a string of ASCII digits:
//! a backtracking matcher with leftmost-first priority (the semantics of the regex crate
//! and of Java, which libphonenumber's patterns are written for) and capture groups.
//!
//! Bounded work on any input: a thread is identified by (token, input position, and
//! whether it starts an alternative); the matcher keeps a bit per such state and never
//! runs one twice. That is sound because nothing after a state depends on how it was
//! reached (no backreferences; `$` depends on the position only), and the first arrival
//! has the highest priority, so a second arrival can only repeat a failure. The work is
//! thus at most ((program length + 1) × 2 × (input length + 1)) states, each a constant
//! amount of work (group boundaries come from the program's [`Jumps`]).

use super::bytecode::*;

/// A capture slot that was never set.
const UNSET: u8 = u8::MAX;

/// Longest input the matcher accepts (digits); longer input never matches. National
/// numbers are at most 17 digits and IDD-prefixed input at most 19.
pub(super) const MAX_INPUT: usize = 32;

/// Whether a match must cover the whole input (`matches()` in libphonenumber) or only
/// start at its beginning (`lookingAt()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Anchor {
    Full,
    Prefix,
    /// Whether the input could begin a match: running out of input counts as success
    /// (and `$` is taken on trust). Used to find a program's possible first digits.
    Partial,
}

/// Start and end of each capture group (`UNSET` when the group did not take part).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Captures([u8; 2 * MAX_GROUPS]);

impl Captures {
    const NONE: Captures = Captures([UNSET; 2 * MAX_GROUPS]);

    /// The text of group `g` (1-based), if it took part in the match.
    pub(super) fn group<'a>(&self, g: usize, input: &'a str) -> Option<&'a str> {
        let start = *self.0.get(2 * g.checked_sub(1)?)?;
        let end = *self.0.get(2 * g - 1)?;
        if start == UNSET || end == UNSET {
            return None;
        }
        input.get(usize::from(start)..usize::from(end))
    }

    fn set(&mut self, slot: usize, pos: u8) {
        if let Some(s) = self.0.get_mut(slot) {
            *s = pos;
        }
    }
}

/// A successful match: where it ended and what the groups captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Match {
    pub end: usize,
    pub captures: Captures,
}

#[derive(Debug, Clone, Copy)]
struct Thread {
    pc: u16,
    pos: u8,
    /// `pc` is a `BAR`: start the alternative after it (and queue the next one).
    alt: bool,
    caps: Captures,
}

/// Reusable memory for [`run`]: one per normalization, so matching allocates nothing.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    visited: Vec<u64>,
    /// Words of `visited` set by the last run: only those are cleared for the next one
    /// (a run touches a few dozen states of a program that may have thousands).
    touched: Vec<usize>,
    stack: Vec<Thread>,
    /// States run and tokens skipped by the last [`run`] (for the bounded-work tests).
    pub(super) steps: usize,
}

/// Where each group's alternatives and end are, for one program: for every `OPEN…` and
/// `BAR` token (and, at index `len`, the implicit top-level group), `next` is the next
/// `BAR` or `CLOSE` of the same group and `close` the group's `CLOSE` (`len` at the top
/// level). Built on a program's first use and kept (see `metadata.rs`), so the matcher
/// jumps where it would otherwise skip token by token, which made a failing match on a
/// long pattern cost its whole length.
#[derive(Debug)]
pub(super) struct Jumps {
    next: Box<[u16]>,
    close: Box<[u16]>,
    /// The digits a non-empty input can start with and still match (bit d = digit d):
    /// lets the engine skip a pattern without running it.
    first: u16,
}

impl Jumps {
    /// One pass over the program with a stack of open groups; `None` if it is malformed.
    pub(super) fn new(program: &[u8]) -> Option<Jumps> {
        let n = program.len();
        if n > MAX_PROGRAM_LEN {
            return None;
        }
        let mut next = vec![0u16; n + 1].into_boxed_slice();
        let mut close = vec![0u16; n + 1].into_boxed_slice();
        // Each open group: its OPEN (or `n` for the top level) and its BARs so far.
        let mut groups: Vec<Vec<usize>> = vec![vec![n]];
        let mut pc = 0;
        let mut finish = |members: &[usize], end: usize| -> Option<()> {
            let end16 = u16::try_from(end).ok()?;
            for (i, &m) in members.iter().enumerate() {
                let following = members.get(i + 1).copied().unwrap_or(end);
                *next.get_mut(m)? = u16::try_from(following).ok()?;
                *close.get_mut(m)? = end16;
            }
            Some(())
        };
        while let Some(&op) = program.get(pc) {
            match op {
                OPEN..=OPEN_OPT | OPEN_CAP..=0x1F => groups.push(vec![pc]),
                BAR => groups.last_mut()?.push(pc),
                CLOSE | CLOSE_CAP..=0x23 => {
                    let members = groups.pop()?;
                    if groups.is_empty() {
                        return None;
                    }
                    finish(&members, pc)?;
                }
                _ => {}
            }
            pc += token_len(program, pc)?;
        }
        let top = groups.pop()?;
        if !groups.is_empty() {
            return None;
        }
        finish(&top, n)?;
        let mut jumps = Jumps {
            next,
            close,
            first: 0x3FF,
        };
        let mut scratch = Scratch::default();
        jumps.first = (0..10u8)
            .filter(|d| {
                let input = [b'0' + d];
                run_with(program, &jumps, &input, Anchor::Partial, &mut scratch).is_some()
            })
            .fold(0, |m, d| m | (1 << d));
        Some(jumps)
    }

    /// Whether a match of the program on `input` is ruled out by its first digit.
    pub(super) fn excludes(&self, input: &[u8]) -> bool {
        match input.first() {
            Some(b) => {
                let d = b.wrapping_sub(b'0');
                d < 10 && self.first & (1 << d) == 0
            }
            None => false,
        }
    }

    fn next(&self, at: usize) -> Option<usize> {
        self.next.get(at).map(|&x| usize::from(x))
    }

    fn close(&self, at: usize) -> Option<usize> {
        self.close.get(at).map(|&x| usize::from(x))
    }
}

/// Match `program` against `input` (ASCII digits) from its start, building its jump
/// table for this one run (tests; the engine keeps each program's table).
#[cfg(test)]
pub(super) fn run(
    program: &[u8],
    input: &[u8],
    anchor: Anchor,
    scratch: &mut Scratch,
) -> Option<Match> {
    scratch.steps = 0;
    run_with(program, &Jumps::new(program)?, input, anchor, scratch)
}

/// Match `program` (with its [`Jumps`]) against `input` (ASCII digits) from its start.
pub(super) fn run_with(
    program: &[u8],
    jumps: &Jumps,
    input: &[u8],
    anchor: Anchor,
    scratch: &mut Scratch,
) -> Option<Match> {
    let n = input.len();
    if n > MAX_INPUT || program.len() > MAX_PROGRAM_LEN || jumps.next.len() != program.len() + 1 {
        return None;
    }
    let width = n + 1;
    for word in scratch.touched.drain(..) {
        if let Some(w) = scratch.visited.get_mut(word) {
            *w = 0;
        }
    }
    // One bit per (token or the program's end, position, starts-an-alternative).
    let words = ((program.len() + 1) * width * 2).div_ceil(64);
    if scratch.visited.len() < words {
        scratch.visited.resize(words, 0);
    }
    scratch.stack.clear();
    scratch.steps = 0;
    let mut vm = Vm {
        program,
        jumps,
        input,
        width,
        scratch,
    };
    // The whole program is an implicit group: queue its second alternative, if any.
    let first = Thread {
        pc: 0,
        pos: 0,
        alt: false,
        caps: Captures::NONE,
    };
    vm.queue_next_alternative(0, first)?;
    let mut thread = first;
    loop {
        if let Some(found) = vm.thread(thread, anchor) {
            return Some(found);
        }
        thread = vm.scratch.stack.pop()?;
    }
}

struct Vm<'a> {
    program: &'a [u8],
    jumps: &'a Jumps,
    input: &'a [u8],
    width: usize,
    scratch: &'a mut Scratch,
}

impl Vm<'_> {
    /// Run one thread until it matches (`Some`) or fails (`None`), queueing the
    /// lower-priority alternatives it passes.
    fn thread(&mut self, mut t: Thread, anchor: Anchor) -> Option<Match> {
        loop {
            self.scratch.steps += 1;
            let pc = usize::from(t.pc);
            let pos = usize::from(t.pos);
            if !self.first_visit(pc, pos, t.alt) {
                return None;
            }
            if t.alt {
                let start = pc + 1;
                t.alt = false;
                t.pc = u16::try_from(start).ok()?;
                self.queue_next_alternative(start, t)?;
                continue;
            }
            let Some(&op) = self.program.get(pc) else {
                return (anchor != Anchor::Full || pos == self.input.len()).then_some(Match {
                    end: pos,
                    captures: t.caps,
                });
            };
            let consumes =
                matches!(op, 0..=ANY | SET_0..=SET_3 | SET_TABLE.. | ANY_N..=ANY_N_LAST | REP);
            if anchor == Anchor::Partial && consumes && pos == self.input.len() {
                return Some(Match {
                    end: pos,
                    captures: t.caps,
                });
            }
            let next = match op {
                0..=ANY | SET_0..=SET_3 | SET_TABLE.. => {
                    let (mask, len) = atom(self.program, pc)?;
                    if !self.digit_in(pos, mask) {
                        return None;
                    }
                    t.pos += 1;
                    pc + len
                }
                ANY_N..=ANY_N_LAST => {
                    let n = usize::from(op - ANY_N);
                    let available = self.input.len().saturating_sub(pos);
                    if anchor == Anchor::Partial && available < n {
                        return (0..available)
                            .all(|i| self.digit_in(pos + i, 0x3FF))
                            .then_some(Match {
                                end: self.input.len(),
                                captures: t.caps,
                            });
                    }
                    if !(0..n).all(|i| self.digit_in(pos + i, 0x3FF)) {
                        return None;
                    }
                    t.pos = u8::try_from(pos + n).ok()?;
                    pc + 1
                }
                END => {
                    if pos != self.input.len() && anchor != Anchor::Partial {
                        return None;
                    }
                    pc + 1
                }
                OPT => {
                    let (mask, len) = atom(self.program, pc + 1)?;
                    let after = pc + 1 + len;
                    if self.digit_in(pos, mask) {
                        self.push(Thread {
                            pc: u16::try_from(after).ok()?,
                            ..t
                        });
                        t.pos += 1;
                    }
                    after
                }
                REP => {
                    let packed = *self.program.get(pc + 1)?;
                    let (min, max) = (usize::from(packed >> 4), usize::from(packed & 0xF));
                    let (mask, len) = atom(self.program, pc + 2)?;
                    let after = u16::try_from(pc + 2 + len).ok()?;
                    let mut count = 0;
                    while count < max && self.digit_in(pos + count, mask) {
                        count += 1;
                    }
                    if count < min {
                        let ran_out = pos + count == self.input.len();
                        return (anchor == Anchor::Partial && ran_out).then_some(Match {
                            end: pos + count,
                            captures: t.caps,
                        });
                    }
                    // Fewer repetitions are the fallbacks, the most promising popped first.
                    for c in min..count {
                        self.push(Thread {
                            pc: after,
                            pos: u8::try_from(pos + c).ok()?,
                            ..t
                        });
                    }
                    t.pos = u8::try_from(pos + count).ok()?;
                    usize::from(after)
                }
                OPEN..=OPEN_OPT | OPEN_CAP..=0x1F => {
                    let optional = op == OPEN_OPT || op >= OPEN_CAP_OPT;
                    if optional {
                        // Skipping the group is the last resort.
                        let close = self.jumps.close(pc)?;
                        self.push(Thread {
                            pc: u16::try_from(close + 1).ok()?,
                            ..t
                        });
                    }
                    if op >= OPEN_CAP {
                        let group = usize::from((op - OPEN_CAP) % 4);
                        t.caps.set(2 * group, t.pos);
                    }
                    self.queue_next_alternative(pc + 1, t)?;
                    pc + 1
                }
                // The alternative before this bar matched: go on after the group.
                BAR => self.jumps.close(pc)?,
                CLOSE => pc + 1,
                CLOSE_CAP..=0x23 => {
                    t.caps.set(2 * usize::from(op - CLOSE_CAP) + 1, t.pos);
                    pc + 1
                }
                _ => return None,
            };
            t.pc = u16::try_from(next).ok()?;
        }
    }

    /// Mark a state as run; `false` if it already was.
    fn first_visit(&mut self, pc: usize, pos: usize, alt: bool) -> bool {
        let bit = ((pc * self.width + pos) << 1) | usize::from(alt);
        let index = bit / 64;
        match self.scratch.visited.get_mut(index) {
            Some(word) => {
                let mask = 1u64 << (bit % 64);
                let first = *word & mask == 0;
                if *word == 0 {
                    self.scratch.touched.push(index);
                }
                *word |= mask;
                first
            }
            None => false,
        }
    }

    fn digit_in(&self, pos: usize, mask: u16) -> bool {
        match self.input.get(pos) {
            Some(&b) => {
                let d = b.wrapping_sub(b'0');
                d < 10 && mask & (1 << d) != 0
            }
            None => false,
        }
    }

    fn push(&mut self, t: Thread) {
        self.scratch.stack.push(t);
    }

    /// An alternative starts at `start` (after an `OPEN…` or `BAR` token, or at 0 for
    /// the top level): queue the next one of the same group, if any.
    fn queue_next_alternative(&mut self, start: usize, t: Thread) -> Option<()> {
        let key = match start {
            0 => self.program.len(),
            s => s - 1,
        };
        let at = self.jumps.next(key)?;
        if self.program.get(at) == Some(&BAR) {
            self.push(Thread {
                pc: u16::try_from(at).ok()?,
                alt: true,
                ..t
            });
        }
        Some(())
    }
}

/// Length of the program at the start of `block`: up to its `TERM` (skipping tokens,
/// since a set's second byte may have any value).
pub(super) fn program_len(block: &[u8]) -> Option<usize> {
    let mut pc = 0;
    while *block.get(pc)? != TERM {
        pc += token_len(block, pc)?;
    }
    Some(pc)
}

/// The digit set of the one-digit token at `pc`, and its length.
fn atom(program: &[u8], pc: usize) -> Option<(u16, usize)> {
    match *program.get(pc)? {
        d @ 0..=9 => Some((1 << d, 1)),
        ANY => Some((0x3FF, 1)),
        op @ SET_0..=SET_3 => {
            let lo = *program.get(pc + 1)?;
            Some(((u16::from(op - SET_0) << 8) | u16::from(lo), 2))
        }
        op @ SET_TABLE.. => Some((super::metadata::common_set(op - SET_TABLE)?, 1)),
        _ => None,
    }
}

/// Length of the token at `pc`.
fn token_len(program: &[u8], pc: usize) -> Option<usize> {
    match *program.get(pc)? {
        OPT => Some(1 + atom(program, pc + 1)?.1),
        REP => Some(2 + atom(program, pc + 2)?.1),
        SET_0..=SET_3 => Some(2),
        _ => Some(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use regex::Regex;

    fn compile(p: &str) -> Vec<u8> {
        phonegen::pattern::compile(p).unwrap().program
    }

    fn full(p: &str, input: &str) -> bool {
        run(
            &compile(p),
            input.as_bytes(),
            Anchor::Full,
            &mut Scratch::default(),
        )
        .is_some()
    }

    fn prefix_end(p: &str, input: &str) -> Option<usize> {
        run(
            &compile(p),
            input.as_bytes(),
            Anchor::Prefix,
            &mut Scratch::default(),
        )
        .map(|m| m.end)
    }

    #[test]
    fn basics() {
        assert!(full("[2-9]\\d{2}", "212"));
        assert!(!full("[2-9]\\d{2}", "112"));
        assert!(!full("[2-9]\\d{2}", "2123"));
        assert!(full("1(?:2|34)?5", "15"));
        assert!(full("1(?:2|34)?5", "1345"));
        assert!(!full("1(?:2|34)?5", "135"));
        assert!(full("\\d{2,4}", "123"));
        assert!(!full("\\d{2,4}", "1"));
        assert_eq!(
            prefix_end("00|0011", "0011612"),
            Some(2),
            "leftmost-first, not longest"
        );
        assert_eq!(prefix_end("0011|00", "0011612"), Some(4));
        assert_eq!(prefix_end("([457]\\d{6})$|1", "4123456"), Some(7));
        assert_eq!(prefix_end("([457]\\d{6})$|1", "14123456"), Some(1));
        assert_eq!(prefix_end("([457]\\d{6})$|1", "41234567"), None);
        let m = run(
            &compile("0?(?:(11|2\\d)15)?"),
            b"0111523",
            Anchor::Prefix,
            &mut Scratch::default(),
        )
        .unwrap();
        assert_eq!(m.end, 5);
        assert_eq!(m.captures.group(1, "0111523"), Some("11"));
    }

    #[test]
    fn malformed_programs_and_odd_input_never_match_or_panic() {
        let mut s = Scratch::default();
        for program in [
            &[0xFFu8][..],
            &[REP],
            &[REP, 0x12],
            &[SET_0],
            &[OPT, OPEN],
            &[OPEN, 1],
        ] {
            for input in [&b""[..], b"1", b"12x", &[0xFF; 40]] {
                let _ = run(program, input, Anchor::Full, &mut s);
                let _ = run(program, input, Anchor::Prefix, &mut s);
            }
        }
        assert!(run(&compile("\\d"), b"x", Anchor::Full, &mut s).is_none());
        assert!(run(
            &compile("\\d{1,3}"),
            &[b'1'; MAX_INPUT + 1],
            Anchor::Prefix,
            &mut s
        )
        .is_none());
    }

    /// Nested optional repetitions take exponential time in a naive backtracker
    /// (choose which 15 of 30 optional digits to use); the visited set keeps it to a
    /// polynomial number of steps.
    #[test]
    fn pathological_patterns_take_bounded_steps() {
        let mut s = Scratch::default();
        for (p, input) in [
            ("(?:\\d?){15}\\d{15}$", "1".repeat(31)),
            ("(?:(?:\\d|\\d\\d|\\d{3})?){10}5", "1".repeat(30)),
            ("(?:1|1?){15}2", "1".repeat(32)),
        ] {
            let program = compile(p);
            let found = run(&program, input.as_bytes(), Anchor::Full, &mut s);
            assert!(found.is_none(), "{p}");
            let bound = bound(program.len(), input.len());
            assert!(s.steps <= bound, "{p}: {} steps > {bound}", s.steps);
            assert!(s.steps < 200_000, "{p}: {} steps", s.steps);
        }
    }

    /// States: (program length + 1) × 2 kinds × positions, each run at most once.
    fn bound(len: usize, n: usize) -> usize {
        (len + 1) * 2 * (n + 1)
    }

    /// Random patterns in the supported subset: digits, `\d`, classes, groups (plain,
    /// optional, captured), alternation, `?`, `{n}`, `{n,m}`, and a trailing `$`.
    fn pattern() -> impl Strategy<Value = String> {
        let class = prop::collection::vec((0u8..10, 0u8..4), 1..3).prop_map(|parts| {
            let body: String = parts
                .iter()
                .map(|(lo, w)| {
                    let hi = (lo + w).min(9);
                    if hi == *lo {
                        format!("{lo}")
                    } else {
                        format!("{lo}-{hi}")
                    }
                })
                .collect();
            format!("[{body}]")
        });
        let leaf = prop_oneof![
            (0u8..10).prop_map(|d| d.to_string()),
            Just("\\d".to_string()),
            class,
        ];
        let quantified = (leaf, 0u8..6, 1u8..4).prop_map(|(atom, kind, n)| match kind {
            0 => format!("{atom}?"),
            1 => format!("{atom}{{{n}}}"),
            2 => format!("{atom}{{{n},{}}}", n + 2),
            _ => atom,
        });
        quantified.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 1..4).prop_map(|v| v.concat()),
                (prop::collection::vec(inner.clone(), 1..4), 0u8..5).prop_map(|(alts, kind)| {
                    let body = alts.join("|");
                    match kind {
                        0 => format!("(?:{body})"),
                        1 => format!("(?:{body})?"),
                        2 => format!("({body})"),
                        3 => format!("({body})?"),
                        _ => format!("(?:{body}){{1,2}}"),
                    }
                }),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1500))]

        /// The matcher agrees with the regex crate (leftmost-first, the semantics the
        /// previous engine and libphonenumber use) on full matches, prefix matches and
        /// captures, and stays within its step bound.
        #[test]
        fn agrees_with_the_regex_crate(
            p in pattern(),
            dollar in any::<bool>(),
            inputs in prop::collection::vec("[0-9]{0,20}", 12),
        ) {
            let p = if dollar { format!("{p}$") } else { p };
            let Ok(compiled) = phonegen::pattern::compile(&p) else {
                // More than four capture groups: out of the subset.
                return Ok(());
            };
            let jumps = Jumps::new(&compiled.program).unwrap();
            let full_re = Regex::new(&format!("^(?:{p})$")).unwrap();
            let prefix_re = Regex::new(&format!("^(?:{p})")).unwrap();
            let mut s = Scratch::default();
            for input in &inputs {
                let ours = run(&compiled.program, input.as_bytes(), Anchor::Full, &mut s);
                prop_assert!(s.steps <= bound(compiled.program.len(), input.len()));
                prop_assert_eq!(ours.is_some(), full_re.is_match(input), "full {} on {}", p, input);
                let ours = run(&compiled.program, input.as_bytes(), Anchor::Prefix, &mut s);
                prop_assert!(s.steps <= bound(compiled.program.len(), input.len()));
                let theirs = prefix_re.captures(input);
                // The first-digit filter never rules out an input that matches.
                if theirs.is_some() {
                    prop_assert!(!jumps.excludes(input.as_bytes()), "{} on {}", p, input);
                }
                prop_assert_eq!(ours.map(|m| m.end), theirs.as_ref().and_then(|c| c.get(0)).map(|m| m.end()), "prefix {} on {}", p, input);
                if let (Some(m), Some(c)) = (ours, theirs) {
                    for g in 1..=usize::from(compiled.groups) {
                        prop_assert_eq!(m.captures.group(g, input), c.get(g).map(|x| x.as_str()), "group {} of {} on {}", g, p, input);
                    }
                }
            }
        }

        /// Arbitrary bytes as a program or as input: no panic, and the step bound holds.
        #[test]
        fn arbitrary_programs_never_panic(
            program in prop::collection::vec(any::<u8>(), 0..64),
            input in prop::collection::vec(any::<u8>(), 0..40),
        ) {
            let mut s = Scratch::default();
            let _ = run(&program, &input, Anchor::Full, &mut s);
            prop_assert!(s.steps <= bound(program.len(), input.len()));
            let _ = run(&program, &input, Anchor::Prefix, &mut s);
            prop_assert!(s.steps <= bound(program.len(), input.len()));
        }
    }
}
