// Test-only: bundles the libraries Grafana provides to plugins (React, @grafana/*, rxjs, emotion,
// lodash) at the versions the plugins are built against, plus the small page that loads the built
// plugins from dist/ the way Grafana does (AMD modules). Not part of the product.
import CopyWebpackPlugin from 'copy-webpack-plugin';
import path from 'path';
import type { Configuration } from 'webpack';

const config: Configuration = {
  mode: 'development',
  devtool: false,
  context: __dirname,
  entry: { harness: './src/harness.tsx' },
  output: { path: path.join(__dirname, 'dist'), filename: '[name].js', clean: true },
  module: {
    rules: [
      // @grafana/ui's ES modules import some packages (ol) without file extensions.
      { test: /\.m?js$/, resolve: { fullySpecified: false } },
      {
        test: /\.[tj]sx?$/,
        exclude: /node_modules/,
        use: {
          loader: 'swc-loader',
          options: { jsc: { target: 'es2020', parser: { syntax: 'typescript', tsx: true, dynamicImport: true } } },
        },
      },
      { test: /\.css$/, use: ['style-loader', 'css-loader'] },
    ],
  },
  resolve: {
    extensions: ['.js', '.jsx', '.ts', '.tsx'],
    alias: {
      // Grafana core sets the PanelRenderer through @grafana/runtime's internal entry, which the
      // package does not export; the harness reaches the same module by its file.
      'grafana-runtime-panel-renderer$': path.join(
        path.dirname(require.resolve('@grafana/runtime/package.json')),
        'dist/esm/components/PanelRenderer.mjs'
      ),
    },
  },
  plugins: [
    new CopyWebpackPlugin({
      patterns: [
        { from: 'index.html', to: '.' },
        // Grafana core serves a spinner icon that @grafana/ui does not ship; a stand-in of the harness's own.
        { from: 'spinner.svg', to: 'grafana-public/img/icons/unicons/spinner.svg' },
        // Grafana's own font (Inter), under the names @grafana/ui's global styles ask for.
        ...Object.entries({
          'Inter-Regular': '400-normal',
          'Inter-Italic': '400-italic',
          'Inter-Medium': '500-normal',
          'Inter-MediumItalic': '500-italic',
        }).map(([name, file]) => ({
          from: path.join(
            path.dirname(require.resolve('@fontsource/inter/package.json')),
            'files',
            `inter-latin-${file}.woff2`
          ),
          to: `grafana-public/fonts/inter/${name}.woff2`,
        })),
        // ...and its monospace font, Roboto Mono (latin), under the hashed name Grafana serves it as.
        {
          from: path.join(
            path.dirname(require.resolve('@fontsource/roboto-mono/package.json')),
            'files',
            'roboto-mono-latin-400-normal.woff2'
          ),
          to: 'grafana-public/fonts/roboto/L0xTDF4xlVMF-BfR8bXMIhJHg45mwgGEFl0_3vrtSM1J-gEPT5Ese6hmHSh0mQ.woff2',
        },
        {
          from: path.join(path.dirname(require.resolve('@grafana/ui/package.json')), 'dist', 'public', 'img'),
          to: 'grafana-public/img',
        },
      ],
    }),
  ],
  performance: { hints: false },
};

export default config;
