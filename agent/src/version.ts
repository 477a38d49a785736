// A literal require: tsc keeps it (src/ and dist/ both sit below the package root) and a
// bundler inlines it.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const pkg = require('../package.json') as { version?: string };

export const VERSION: string = pkg.version ?? '0.0.0';
