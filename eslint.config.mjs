import { defineConfig } from 'eslint/config';
import grafanaConfig from '@grafana/eslint-config/flat.js';
import importPlugin from 'eslint-plugin-import';
import reactPlugin from 'eslint-plugin-react';
import reactHooksPlugin from 'eslint-plugin-react-hooks';
import globals from 'globals';

/** Every React rule, off: for the agent, which is Node.js code (a function named useKey is no hook). */
const reactRulesOff = Object.fromEntries(
  [
    ...Object.keys(reactPlugin.rules).map((r) => `react/${r}`),
    ...Object.keys(reactHooksPlugin.rules).map((r) => `react-hooks/${r}`),
  ].map((r) => [r, 'off'])
);

export default defineConfig([
  {
    ignores: ['**/node_modules/', '**/dist/', '**/coverage/', 'artifacts/', 'bin/', '.config/jest/', '*.js'],
  },
  ...grafanaConfig,
  {
    rules: {
      'react/prop-types': 'off',
    },
  },
  {
    files: ['src/**/*.{ts,tsx}', 'test/**/*.{ts,tsx}'],
    languageOptions: {
      parserOptions: {
        project: './tsconfig.json',
      },
    },
    rules: {
      '@typescript-eslint/no-deprecated': 'warn',
    },
  },
  {
    // Who may import whom (CONTRIBUTING.md, Layout). Three plugins share one bundle source: the app
    // (module.tsx, src/pages), the datasource (src/datasource) and the panel (src/panels). Each imports
    // itself and src/shared, nothing of another plugin; src/shared imports no plugin.
    files: ['src/**/*.{ts,tsx}'],
    plugins: { import: importPlugin },
    settings: { 'import/resolver': { node: { extensions: ['.ts', '.tsx', '.js'] } } },
    rules: {
      'import/no-restricted-paths': [
        'error',
        {
          zones: [
            {
              target: './src/shared',
              from: ['./src/pages', './src/datasource', './src/panels', './src/module.tsx'],
              message:
                'src/shared is used by every plugin and imports none of them: move what it needs into src/shared.',
            },
            {
              target: './src/datasource',
              from: ['./src/pages', './src/panels', './src/module.tsx'],
              message: 'The datasource imports only itself and src/shared.',
            },
            {
              target: './src/panels',
              from: ['./src/pages', './src/datasource', './src/module.tsx'],
              message: 'The panel imports only itself and src/shared.',
            },
            {
              target: ['./src/pages', './src/module.tsx'],
              from: ['./src/datasource', './src/panels'],
              message: 'The app imports only itself and src/shared.',
            },
          ],
        },
      ],
    },
  },
  // The agent: Node.js (its own tsconfig: ES2022, CommonJS output), no React.
  {
    files: ['agent/src/**/*.ts', 'agent/test/**/*.ts', 'agent/bench/**/*.ts'],
    languageOptions: {
      ecmaVersion: 2022,
      globals: globals.node,
      parserOptions: {
        project: './agent/tsconfig.json',
      },
    },
    rules: {
      ...reactRulesOff,
      // The core rule takes TypeScript's overload signatures for redeclarations.
      'no-redeclare': 'off',
      '@typescript-eslint/no-redeclare': 'error',
      '@typescript-eslint/no-deprecated': 'warn',
    },
  },
]);
