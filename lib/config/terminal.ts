// What the environment says about colour on a terminal. Here because only
// the config module reads process.env.

/**
 * Colour is wanted unless NO_COLOR is set to something (no-color.org: "when
 * present and not an empty string") or the terminal is `dumb`.
 */
export function colourWanted(env: NodeJS.ProcessEnv = process.env): boolean {
  return !(env.NO_COLOR !== undefined && env.NO_COLOR !== '') && env.TERM !== 'dumb';
}
