import { defineConfig } from 'eslint/config';
import grafanaConfig from '@grafana/eslint-config/flat.js';
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
      '@typescript-eslint/no-deprecated': 'warn',
    },
  },
]);
