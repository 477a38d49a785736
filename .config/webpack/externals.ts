import type { Configuration } from 'webpack';

// The libraries Grafana provides to every plugin at run time. A plugin that bundled its own copy
// would get a second React or a second theme context, so they stay external; the browser test
// harness supplies the same names.
export const externals: Configuration['externals'] = [
  { 'amd-module': 'module' },
  'lodash',
  'react',
  'react/jsx-runtime',
  'react/jsx-dev-runtime',
  'react-dom',
  'react-router',
  'rxjs',
  'emotion',
  '@emotion/react',
  '@emotion/css',
  /^@grafana\/ui/i,
  /^@grafana\/runtime/i,
  /^@grafana\/data/i,
];
