/**
 * Names people type and others read (project names, usernames, branches) are compared and shown as text, so one name
 * must have one spelling: NFC-normalised (`e` + U+0301 is stored as `é`), and free of the characters that make two
 * different names look alike or make a name render differently from its bytes.
 */

/**
 * The schema keyword that asks for it (src/http/validators.ts implements it): the value is normalised to NFC before
 * `maxLength` and `pattern` are checked, and refused with a message saying which character when nameViolation() finds
 * one. An `x-` name, so that the OpenAPI document may carry it as an extension.
 */
export const CANONICAL_NAME_KEYWORD = 'x-canonical-name';

/** What a name schema adds to its options; the description says it for readers of the OpenAPI document. */
export const canonicalName = { [CANONICAL_NAME_KEYWORD]: true } as const;

/** The sentence a name schema's description ends with. */
export const CANONICAL_NAME_RULES =
  'Stored NFC-normalised; control, zero-width (U+200B–U+200D, U+2060, U+FEFF) and bidirectional-control ' +
  '(U+202A–U+202E, U+2066–U+2069) characters and lone surrogates are refused.';

const hex = (code: number) => `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;

function refusedKind(code: number): string | undefined {
  if (code <= 0x1f || (code >= 0x7f && code <= 0x9f)) return 'a control character';
  if ((code >= 0x200b && code <= 0x200d) || code === 0x2060 || code === 0xfeff) return 'a zero-width character';
  if ((code >= 0x202a && code <= 0x202e) || (code >= 0x2066 && code <= 0x2069)) return 'a bidirectional control character';
  return undefined;
}

/** Why `text` is not an acceptable name (the first offending character, 1-based), or undefined. One pass: linear. */
export function nameViolation(text: string): string | undefined {
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (code >= 0xd800 && code <= 0xdbff) {
      const next = text.charCodeAt(index + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        index++;
        continue;
      }
      return `must not contain a lone surrogate (${hex(code)} at character ${index + 1})`;
    }
    if (code >= 0xdc00 && code <= 0xdfff) return `must not contain a lone surrogate (${hex(code)} at character ${index + 1})`;
    const kind = refusedKind(code);
    if (kind) return `must not contain ${kind} (${hex(code)} at character ${index + 1})`;
  }
  return undefined;
}
