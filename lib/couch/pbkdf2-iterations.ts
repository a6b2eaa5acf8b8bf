// PBKDF2 iterations of the password hashes couchlog makes on the embedded
// server: setup's accounts ([couch_httpd_auth] iterations) and its admin
// (embedded/admin-hash.ts).

/** CouchDB 3.5's default PBKDF2 iterations ([chttpd_auth] iterations), set on the embedded server. */
export const EMBEDDED_PBKDF2_ITERATIONS = 600_000;
