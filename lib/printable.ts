// Text from logs shown on a terminal (report tables and CSV, the shipper's
// and jsonformat's messages on stderr, which cron mails): anyone may write a
// log value, and raw control characters in it would drive the terminal
// (ESC sequences retitle it, recolour or erase lines, CR or LF fake rows)
// and bidi overrides would show "evil" as "live". Each such character is
// shown as an escape instead: \x1b, \r, \u202e. Printable text, tabs
// excepted, is left alone; JSON output needs none of this (it escapes).

// C0 controls (tab included: it breaks column alignment), DEL, C1 controls,
// and the bidi embeddings, overrides, isolates and marks.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function escapeOne(c: string): string {
  const named = NAMED[c];
  if (named) return named;
  const code = c.charCodeAt(0);
  return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/** `text` with every character that would act on a terminal shown as an escape. */
export function printable(text: string): string {
  return text.replace(UNSAFE, escapeOne);
}

// The same without tab, LF and CR: they are data in a quoted CSV cell.
const UNSAFE_IN_CSV = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** For CSV (a data format: tab and line breaks are kept, quoted): escape sequences and bidi controls shown as escapes. */
export function printableCsv(text: string): string {
  return text.replace(UNSAFE_IN_CSV, escapeOne);
}
