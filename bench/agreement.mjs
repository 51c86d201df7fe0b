// Agreement: same valid/invalid verdict and, when both accept, the same E.164.

/** Our verdict, with what to show a person. `phone_region_required` counts as invalid. */
export function oursVerdict(widget, raw, region) {
  const r = widget.normalizePhone(raw, region ?? undefined);
  if (r.ok) {
    return { ok: true, e164: r.e164, show: r.extension ? `${r.e164} ext ${r.extension}` : r.e164 };
  }
  return { ok: false, code: r.code, show: r.code };
}

/** libphonenumber-js's verdict: default country = region; valid iff parsed && isValid(). */
export function libVerdict(lib, raw, region) {
  const p = lib.parsePhoneNumberFromString(raw, region ?? undefined);
  if (!p) return { ok: false, code: 'not_parsed', show: 'not parsed' };
  const ext = p.ext ? ` ext ${p.ext}` : '';
  if (!p.isValid()) {
    return {
      ok: false,
      code: 'invalid',
      show: `invalid (parsed ${p.number}${ext}, ${p.isPossible() ? 'possible length' : 'impossible length'})`,
    };
  }
  return { ok: true, e164: p.number, show: `${p.number}${ext} [${p.getType() ?? 'type unknown'}]` };
}

/** Compare both on every entry; group disagreements by what went differently. */
export function compare(entries, widget, lib) {
  const disagreements = [];
  let bothValid = 0;
  let bothInvalid = 0;
  entries.forEach((e, index) => {
    const ours = oursVerdict(widget, e.raw, e.region);
    const theirs = libVerdict(lib, e.raw, e.region);
    let category;
    if (ours.ok && theirs.ok) {
      if (ours.e164 === theirs.e164) {
        bothValid++;
        return;
      }
      category = 'both accept, different E.164';
    } else if (!ours.ok && !theirs.ok) {
      bothInvalid++;
      return;
    } else {
      category = ours.ok ? 'ours accepts, libphonenumber-js rejects' : 'ours rejects, libphonenumber-js accepts';
    }
    disagreements.push({
      index,
      category,
      kind: e.kind,
      country: e.country,
      raw: e.raw,
      region: e.region,
      ours: ours.show,
      oursCode: ours.ok ? null : ours.code,
      theirs: theirs.show,
    });
  });
  const total = entries.length;
  const agree = total - disagreements.length;
  const groups = new Map();
  for (const d of disagreements) {
    const key = `${d.category} | ours: ${d.oursCode ?? 'ok'} | kind: ${d.kind}`;
    groups.set(key, (groups.get(key) ?? 0) + 1);
  }
  return {
    total,
    agree,
    bothValid,
    bothInvalid,
    percent: (100 * agree) / total,
    disagreements,
    groups: [...groups.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([key, count]) => ({ key, count })),
  };
}

/**
 * Up to `limit` disagreements to print: round-robin over the groups (largest first) so
 * every pattern shows up, in corpus order within a group.
 */
export function sampleDisagreements(result, limit = 30) {
  const byGroup = new Map(result.groups.map((g) => [g.key, []]));
  for (const d of result.disagreements) {
    byGroup.get(`${d.category} | ours: ${d.oursCode ?? 'ok'} | kind: ${d.kind}`).push(d);
  }
  const queues = [...byGroup.values()];
  const out = [];
  for (let round = 0; out.length < limit; round++) {
    let took = false;
    for (const q of queues) {
      if (round < q.length && out.length < limit) {
        out.push(q[round]);
        took = true;
      }
    }
    if (!took) break;
  }
  return out;
}
