// Which requests present credentials already known to be good, so that the
// failure limiter lets them through without holding a guess's place: busy
// clients (shippers, HEC senders, dashboards) must never wait on guesses.
import type { FastifyRequest } from 'fastify';
import { presentedToken, type TokenTable } from '../hec/tokens.js';
import type { CredentialVerifier } from './credential-verifier.js';
import { extractCredentials } from './credentials.js';

/** A request to the HEC endpoints (`/services/collector...`), which take a token as Basic password too. */
export const isHec = (request: FastifyRequest): boolean => /^\/services\/collector(?:[/?]|$)/.test(request.raw.url ?? '');

export type KnownGood = (request: FastifyRequest) => boolean;

/** Good: a configured write/HEC token, the writer's own password, or credentials the verifier found good recently. */
export function knownCredentials(verifier: CredentialVerifier, tokens: TokenTable): KnownGood {
  return (request) => {
    const creds = extractCredentials(request.headers);
    if (!creds) return false;
    const presented = presentedToken(creds.authorization);
    if (presented.kind === 'token' && (presented.scheme !== 'basic' || isHec(request)) && tokens.find(presented.secret)) return true;
    return verifier.knownGood(creds);
  };
}
