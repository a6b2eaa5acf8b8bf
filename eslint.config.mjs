// ESLint (typescript-eslint's recommended rules) over every source folder;
// formatting is Prettier's (.prettierrc.json). Both run in `npm test`.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  // design-docs/ runs inside CouchDB as ES5 source: test/unit/design-docs/ parses it as such.
  { ignores: ['dist/**', 'node_modules/**', 'design-docs/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      // Log parsers and path guards match control characters on purpose.
      'no-control-regex': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true }],
    },
  },
  {
    // ES5 on purpose: conn-key.ts is serialized into the correlator's lookup view (CouchDB's
    // JavaScript engine), client.ts is the dashboard's browser code served as it is written.
    files: ['correlator/engine/conn-key.ts', 'server/dashboard/client.ts'],
    rules: { 'no-var': 'off', '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    // Tests read JSON answers of servers whose shape they are checking.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    files: ['**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
);
