// The choice every log database makes between two ways of keeping its
// documents append-only (a per-app config key; docs/append-only.md).
import { z } from 'zod';

/**
 * How a log database keeps its documents from being changed or deleted by
 * anyone but an admin (docs/append-only.md has the measurements):
 *  - validate: a JavaScript validate_doc_update refuses it (CouchDB runs
 *    every written document through its JavaScript process: 0.14x of the
 *    bare _bulk_docs rate on Apache CouchDB 3.5, almost free on the
 *    embedded server);
 *  - audit: no validate_doc_update; only the ingress holds the writer's
 *    password, and `couchlog audit` proves afterwards that no stored
 *    document was changed, deleted or given a second revision branch
 *    (and, for log_correlated, that every record carries the correlator's
 *    signature).
 */
export const PROTECTIONS = ['validate', 'audit'] as const;
export type Protection = (typeof PROTECTIONS)[number];
export const protection = z.enum(PROTECTIONS);
