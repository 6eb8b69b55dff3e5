import neostandard, { resolveIgnoresFromGitignore } from 'neostandard'

export default [
  ...neostandard({
    ts: true,
    ignores: [
      ...resolveIgnoresFromGitignore(),
      // TEMPORARY while other branches rewrite these files (issue 12, 10, 11); the lead removes it at the final pass
      'services/analytics/**', 'services/core/**', 'services/producer/**', 'services/transformer/**',
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
