/**
 * Proactive negotiation on `Accept` (RFC 9110 §12.5.1), for the few answers that come in more than
 * one type. No negotiation library is a dependency, and the offered types are few and fixed.
 */

interface MediaRange {
  type: string;
  subtype: string;
  q: number;
  /** Position in the header, the last tie-break. */
  order: number;
}

const Q_VALUE = /^(0(\.\d{0,3})?|1(\.0{0,3})?)$/;
const TOKEN = /^[!#$%&'*+.^_`|~\w-]+$/;

/**
 * The offered type the client prefers: highest q (from the most specific range that matches it;
 * q=0 means "not this"), then the more specific match, then the range listed first, then the
 * order of `offered`. No or an empty Accept header takes the first offered; `undefined` when the
 * header accepts none of them (the caller decides whether to answer its default anyway).
 */
export function preferredType(accept: string | undefined, offered: readonly string[]): string | undefined {
  if (accept === undefined || accept.trim() === '') return offered[0];
  const ranges = parseAccept(accept);
  let best: { type: string; q: number; specificity: number; order: number } | undefined;
  for (const type of offered) {
    const [t, s] = type.toLowerCase().split('/');
    let match: { q: number; specificity: number; order: number } | undefined;
    for (const r of ranges) {
      const specificity = r.type === t && r.subtype === s ? 2 : r.type === t && r.subtype === '*' ? 1 : r.type === '*' && r.subtype === '*' ? 0 : -1;
      if (specificity > (match?.specificity ?? -1)) match = { q: r.q, specificity, order: r.order };
    }
    if (!match || match.q === 0) continue;
    if (!best || match.q > best.q || (match.q === best.q && (match.specificity > best.specificity || (match.specificity === best.specificity && match.order < best.order)))) {
      best = { type, ...match };
    }
  }
  return best?.type;
}

/** The header's media ranges; a malformed one (no subtype, `*\/json`, a bad q) is skipped. */
function parseAccept(header: string): MediaRange[] {
  const ranges: MediaRange[] = [];
  splitOutsideQuotes(header, ',').forEach((item, order) => {
    const [range, ...params] = splitOutsideQuotes(item, ';').map((p) => p.trim());
    const [type, subtype, extra] = range.toLowerCase().split('/');
    if (extra !== undefined || !type || !subtype || !TOKEN.test(type) || !TOKEN.test(subtype) || (type === '*' && subtype !== '*')) return;
    let q = 1;
    for (const param of params) {
      const eq = param.indexOf('=');
      if (eq < 0 || param.slice(0, eq).trim().toLowerCase() !== 'q') continue;
      const value = param.slice(eq + 1).trim();
      if (!Q_VALUE.test(value)) return;
      q = Number(value);
      // What follows q is accept-ext, not part of the media type.
      break;
    }
    ranges.push({ type, subtype, q, order });
  });
  return ranges;
}

/** Splits on `separator` where it is not inside a quoted string (a parameter's value may be one). */
function splitOutsideQuotes(text: string, separator: string): string[] {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted && c === '\\' && i + 1 < text.length) {
      current += c + text[++i];
      continue;
    }
    if (c === '"') quoted = !quoted;
    if (c === separator && !quoted) {
      parts.push(current);
      current = '';
    } else current += c;
  }
  parts.push(current);
  return parts.filter((p) => p.trim() !== '');
}
