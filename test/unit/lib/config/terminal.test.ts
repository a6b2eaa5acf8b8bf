import { test } from 'node:test';
import assert from 'node:assert/strict';
import { colourWanted } from '../../../../lib/config/terminal.js';

test('colour unless NO_COLOR is set to something or the terminal is dumb (no-color.org)', () => {
  assert.equal(colourWanted({ TERM: 'xterm-256color' }), true);
  assert.equal(colourWanted({ TERM: 'xterm-256color', NO_COLOR: '1' }), false);
  assert.equal(colourWanted({ TERM: 'xterm-256color', NO_COLOR: 'false' }), false, 'any value counts');
  assert.equal(colourWanted({ TERM: 'xterm-256color', NO_COLOR: '' }), true, 'an empty NO_COLOR does not');
  assert.equal(colourWanted({ TERM: 'dumb' }), false);
  assert.equal(colourWanted({}), true);
});
