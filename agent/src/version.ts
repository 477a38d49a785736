// A literal require: tsc keeps it (src/ and dist/ both sit below the package root) and a
// bundler inlines it.
const pkg = require('../package.json') as { version?: string };

export const VERSION: string = pkg.version ?? '0.0.0';
