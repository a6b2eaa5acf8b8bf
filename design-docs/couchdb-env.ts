// The globals CouchDB's JavaScript sandbox gives view and list functions.
// Declared here so the sources type-check; they exist only inside CouchDB
// (and in the unit tests, which provide them).
export {};

declare global {
  function emit(key: unknown, value: unknown): void;
  function getRow(): ViewRow | null;
  function send(chunk: string): void;
  function start(response: { headers?: Record<string, string>; code?: number }): void;
  /** Replaced with the design document's column metadata when serialized. */
  const __VIEW_META__: Record<string, ViewMetaSource>;

  interface ViewRow {
    key: unknown;
    value: unknown;
    id?: string;
  }
  interface ViewMetaSource {
    keys: string[];
    reduced: string;
    mapped: string;
    dateAt: number;
    noun?: [string, string];
    unit?: [string, string];
  }
  interface ListRequest {
    path: string[];
    query: Record<string, string>;
  }
}
