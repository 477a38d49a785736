// Unit and component tests of the frontend (src/). Browser tests live in test/browser and the agent
// has its own runner.
process.env.TZ = 'UTC';

// Packages that ship only ES modules (some as .mjs) and must go through the same transform.
const esModules = [
  '@grafana/schema',
  '@wojtekmaj/date-utils',
  'd3',
  'd3-[a-z-]+',
  'get-user-locale',
  'internmap',
  'marked',
  'memoize',
  'mimic-function',
  'ol',
  'react-calendar',
  'react-colorful',
  'rxjs',
  'uuid',
];

module.exports = {
  // Kept with the packages, not in the temporary folder (make test checks that a run leaves nothing there).
  cacheDirectory: '<rootDir>/node_modules/.cache/jest',
  moduleNameMapper: {
    '\\.(css|scss|sass)$': 'identity-obj-proxy',
    'react-inlinesvg': '<rootDir>/.config/jest/mocks/react-inlinesvg.tsx',
  },
  modulePaths: ['<rootDir>/src'],
  roots: ['<rootDir>/src'],
  setupFilesAfterEnv: ['<rootDir>/.config/jest/setup.js'],
  testEnvironment: 'jest-environment-jsdom',
  testMatch: ['<rootDir>/src/**/*.test.{ts,tsx}'],
  transform: {
    '^.+\\.(t|j)sx?$|^.+\\.mjs$': [
      '@swc/jest',
      { jsc: { parser: { syntax: 'typescript', tsx: true, dynamicImport: true }, transform: { react: { runtime: 'classic' } } } },
    ],
  },
  moduleFileExtensions: ['ts', 'tsx', 'js', 'jsx', 'mjs', 'json'],
  transformIgnorePatterns: [`node_modules/(?!.*(${esModules.join('|')})/.*)`],
  watchPathIgnorePatterns: ['<rootDir>/node_modules', '<rootDir>/dist'],
};
