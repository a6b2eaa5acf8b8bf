// Which design documents each log database gets. Later report documents
// are chosen per app by the config; the append-only validator goes to all.
import { appendOnly } from './append-only.js';
import { fnSource, type DesignDoc } from './serialize.js';

export { sameDesignDoc, type DesignDoc } from './serialize.js';
export { EXISTS_REASON_PREFIX } from './append-only.js';

export const VALIDATE_DDOC_ID = '_design/couchlog';

export function validateDesignDoc(): DesignDoc {
  return {
    _id: VALIDATE_DDOC_ID,
    language: 'javascript',
    validate_doc_update: fnSource(appendOnly),
  };
}

/** Every design document a log database must hold. */
export function designDocsForApp(_app: string): DesignDoc[] {
  return [validateDesignDoc()];
}
