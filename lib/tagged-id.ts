// `<id>~` and 24 hex digits: the id the ingress gives a document whose id
// was taken by another content (server/write/claimed-ids.ts). Clients may
// not send such ids (server/write/validate-docs.ts): only the ingress makes
// them, with its own key.
export const TAGGED_ID = /~[0-9a-f]{24}$/;

/** The id a document was sent with: its stored id without the ingress's tag. */
export function untaggedId(id: string): string {
  return TAGGED_ID.test(id) ? id.slice(0, -25) : id;
}
