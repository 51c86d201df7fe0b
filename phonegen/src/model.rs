//! What `core::phone` needs from the metadata, read through the `phonenumber` crate's
//! own loader, with every pattern compiled and interned.

use std::collections::HashMap;

use phonenumber::metadata::{Database, Descriptor, Metadata};

use crate::pattern::{self, Compiled, Parsed};

/// The number types, in the order `core::phone` checks them (the crate's order):
/// premium rate, toll free, shared cost, VoIP, personal, pager, UAN, voicemail, fixed
/// line, mobile.
pub const TYPE_NAMES: [&str; 10] = [
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
    "mobile",
];

/// One territory (or non-geographic entity, id `001`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionModel {
    pub id: String,
    pub code: u16,
    /// Empty when the region has none.
    pub national_prefix: String,
    pub npfp: Option<usize>,
    pub npfp_groups: u8,
    /// `$1`-style rule applied to the national-prefix-for-parsing match; empty if none.
    pub transform: String,
    pub idd: Option<usize>,
    pub leading: Option<usize>,
    pub general: usize,
    /// Pattern of each of [`TYPE_NAMES`] the region has.
    pub types: [Option<usize>; 10],
    /// Possible lengths of each type, bit n = length n (0 = any length).
    pub lengths: [u32; 10],
}

impl RegionModel {
    /// The region's patterns in the order of its block in the tables: national prefix
    /// for parsing, IDD, leading digits, general description, then the ten types.
    pub fn slots(&self) -> [Option<usize>; 14] {
        let mut out = [None; 14];
        out[0] = self.npfp;
        out[1] = self.idd;
        out[2] = self.leading;
        out[3] = Some(self.general);
        out[4..].copy_from_slice(&self.types);
        out
    }
}

/// Everything the generated tables hold.
#[derive(Debug, Clone)]
pub struct Model {
    /// libphonenumber metadata version, e.g. `9.0.33`.
    pub version: String,
    /// Where the XML came from, for the generated file's header.
    pub source: String,
    /// Grouped by country code (ascending); within a code in the crate's order (the main
    /// country first), which decides which region a number is checked against.
    pub regions: Vec<RegionModel>,
    /// Every distinct pattern, compiled with [`Model::sets`].
    pub patterns: Vec<Compiled>,
    /// The most used digit sets, written as one-byte tokens (at most 128).
    pub sets: Vec<u16>,
}

#[derive(Default)]
struct Interner {
    index: HashMap<String, usize>,
    patterns: Vec<Parsed>,
    /// How many regions refer to each pattern.
    uses: Vec<usize>,
}

impl Interner {
    fn add(&mut self, raw: &str, what: &str) -> Result<usize, String> {
        let parsed = pattern::parse(raw).map_err(|e| format!("{what}: {e}"))?;
        if let Some(&i) = self.index.get(parsed.source()) {
            if let Some(n) = self.uses.get_mut(i) {
                *n += 1;
            }
            return Ok(i);
        }
        let i = self.patterns.len();
        self.index.insert(parsed.source().to_owned(), i);
        self.patterns.push(parsed);
        self.uses.push(1);
        Ok(i)
    }

    fn groups(&self, i: usize) -> u8 {
        self.patterns
            .get(i)
            .and_then(|p| p.compile(&[]).ok())
            .map_or(0, |c| c.groups)
    }
}

/// Build the model from a loaded database. Fails, naming the region and pattern, on
/// anything the runtime would not treat exactly as the crate does.
pub fn build(db: &Database, version: &str, source: &str) -> Result<Model, String> {
    let mut interner = Interner::default();
    let mut regions = Vec::new();
    for code in 1..=999u16 {
        let Some(metas) = db.by_code(&code) else {
            continue;
        };
        for meta in metas {
            regions.push(region(meta, &mut interner)?);
        }
    }
    if regions.is_empty() {
        return Err("the metadata has no territories".into());
    }
    // The 128 sets used most often (counting every region's copy, as the tables store
    // one copy per region) get one-byte tokens; ties broken by value, so the choice is
    // deterministic.
    let mut counts: HashMap<u16, usize> = HashMap::new();
    for (p, uses) in interner.patterns.iter().zip(&interner.uses) {
        for set in p.sets() {
            *counts.entry(set).or_default() += uses;
        }
    }
    let mut by_use: Vec<(u16, usize)> = counts.into_iter().collect();
    by_use.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let sets: Vec<u16> = by_use.into_iter().take(128).map(|(s, _)| s).collect();
    let patterns = interner
        .patterns
        .iter()
        .map(|p| p.compile(&sets).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Model {
        version: version.to_owned(),
        source: source.to_owned(),
        regions,
        patterns,
        sets,
    })
}

fn region(meta: &Metadata, interner: &mut Interner) -> Result<RegionModel, String> {
    let id = meta.id().to_owned();
    let what = |field: &str| format!("{id} {field}");
    let geographic = id.len() == 2 && id.bytes().all(|b| b.is_ascii_uppercase());
    if !geographic && id != "001" {
        return Err(format!("region id {id:?} is neither ISO alpha-2 nor 001"));
    }
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let national_prefix = meta.national_prefix().unwrap_or_default().to_owned();
    if !digits_only(&national_prefix) {
        return Err(format!("{}: {national_prefix:?}", what("national prefix")));
    }
    let npfp = meta
        .national_prefix_for_parsing()
        .map(|p| interner.add(p.as_str(), &what("nationalPrefixForParsing")))
        .transpose()?;
    let npfp_groups = npfp.map_or(0, |i| interner.groups(i));
    let transform = meta
        .national_prefix_transform_rule()
        .unwrap_or_default()
        .to_owned();
    if meta.national_prefix_transform_rule().is_some() {
        check_transform(&transform, npfp_groups)
            .map_err(|e| format!("{}: {e}", what("transform rule")))?;
    }
    let idd = meta
        .international_prefix()
        .map(|p| interner.add(p.as_str(), &what("internationalPrefix")))
        .transpose()?;
    let leading = meta
        .leading_digits()
        .map(|p| interner.add(p.as_str(), &what("leadingDigits")))
        .transpose()?;
    let d = meta.descriptors();
    let general_desc = d.general();
    // The crate never fills the general description's lengths (the XML does not carry
    // them), and core::phone relies on that: its length check then always says "not
    // possible". A metadata source that fills them needs a look at core::phone first.
    if !general_desc.possible_length().is_empty() {
        return Err(format!("{}: possible lengths are set", what("generalDesc")));
    }
    let general = interner.add(
        general_desc.national_number().as_str(),
        &what("generalDesc"),
    )?;
    let descs: [Option<&Descriptor>; 10] = [
        d.premium_rate(),
        d.toll_free(),
        d.shared_cost(),
        d.voip(),
        d.personal_number(),
        d.pager(),
        d.uan(),
        d.voicemail(),
        d.fixed_line(),
        d.mobile(),
    ];
    let mut types = [None; 10];
    let mut lengths = [0u32; 10];
    for ((desc, name), (slot, mask)) in descs
        .iter()
        .zip(TYPE_NAMES)
        .zip(types.iter_mut().zip(lengths.iter_mut()))
    {
        let Some(desc) = desc else { continue };
        *slot = Some(interner.add(desc.national_number().as_str(), &what(name))?);
        for &len in desc.possible_length() {
            if !(1..32).contains(&len) {
                return Err(format!("{}: possible length {len}", what(name)));
            }
            *mask |= 1 << len;
        }
    }
    Ok(RegionModel {
        code: meta.country_code(),
        national_prefix,
        npfp,
        npfp_groups,
        transform,
        idd,
        leading,
        general,
        types,
        lengths,
        id,
    })
}

/// A transform rule is digits and `$n` group references (n a single digit naming an
/// existing group, not followed by a letter, digit or `_`, which the regex crate would
/// read as part of the group's name).
fn check_transform(rule: &str, groups: u8) -> Result<(), String> {
    if rule.is_empty() {
        return Err("empty".into());
    }
    let bytes = rule.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'0'..=b'9' => i += 1,
            b'$' => {
                let group = bytes.get(i + 1).copied().unwrap_or(0);
                if !(b'1'..=b'9').contains(&group) || group - b'0' > groups {
                    return Err(format!(
                        "{rule:?} refers to a group the pattern does not have"
                    ));
                }
                if bytes
                    .get(i + 2)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                {
                    return Err(format!(
                        "{rule:?}: a group reference followed by a name character"
                    ));
                }
                i += 2;
            }
            _ => return Err(format!("{rule:?} has something other than digits and $n")),
        }
    }
    Ok(())
}
