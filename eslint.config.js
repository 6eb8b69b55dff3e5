import neostandard, { resolveIgnoresFromGitignore } from 'neostandard'

export default [
  ...neostandard({
    ts: true,
    ignores: [
      ...resolveIgnoresFromGitignore(),
    ],
  }),
  {
    files: ['web/public/**/*.js'],
    languageOptions: { globals: { EventSource: 'readonly' } },
  },
  {
    rules: {
      '@stylistic/max-len': ['error', { code: 120, ignoreUrls: true }],
      // `void promise` marks a promise deliberately not awaited (an event handler, a timer)
      'no-void': ['error', { allowAsStatement: true }],
    },
  },
]
