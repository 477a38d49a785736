// Builds the app and its nested plugins into dist/, in the layout Grafana's plugin loader expects:
// one AMD module.js per plugin, Grafana's shared libraries left external, manifests and assets copied.
// Modelled on the configuration that @grafana/create-plugin scaffolds (webpack with SWC, AMD output,
// Grafana's libraries external); the repository layout (app manifest at the root, nested plugins
// under src/) is Vigil's own.
import CopyWebpackPlugin from 'copy-webpack-plugin';
import fs from 'fs';
import path from 'path';
import ReplaceInFileWebpackPlugin from 'replace-in-file-webpack-plugin';
import TerserPlugin from 'terser-webpack-plugin';
import webpack, { type Configuration } from 'webpack';
import VirtualModulesPlugin from 'webpack-virtual-modules';

import { externals } from './externals';

const root = path.resolve(__dirname, '..', '..');
const SOURCE_DIR = path.join(root, 'src');
const DIST_DIR = path.join(root, 'dist');

function readJson(file: string) {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

const appPluginJson = readJson(path.join(root, 'plugin.json'));
const version: string = readJson(path.join(root, 'package.json')).version;

// Each plugin: the folder its module is built into (relative to dist/), its manifest, its entry and
// the README Grafana shows on its plugin page. The README at the repository root is for developers;
// the app's README for Grafana admins is src/README.md, as in a create-plugin scaffold.
const plugins = [
  {
    out: '',
    manifest: path.join(root, 'plugin.json'),
    entry: path.join(SOURCE_DIR, 'module.tsx'),
    readme: path.join(SOURCE_DIR, 'README.md'),
  },
  {
    out: 'datasource',
    manifest: path.join(SOURCE_DIR, 'datasource', 'plugin.json'),
    entry: path.join(SOURCE_DIR, 'datasource', 'module.ts'),
    readme: path.join(SOURCE_DIR, 'datasource', 'README.md'),
  },
  {
    out: 'panels/restart',
    manifest: path.join(SOURCE_DIR, 'panels', 'restart', 'plugin.json'),
    entry: path.join(SOURCE_DIR, 'panels', 'restart', 'module.tsx'),
    readme: path.join(SOURCE_DIR, 'panels', 'restart', 'README.md'),
  },
];

function assetsOf(manifestFile: string): string[] {
  const manifest = readJson(manifestFile);
  const logos = [manifest.info?.logos?.small, manifest.info?.logos?.large];
  const shots = (manifest.info?.screenshots ?? []).map((s: { path: string }) => s.path);
  return Array.from(new Set<string>([...logos, ...shots].filter(Boolean)));
}

const copyPatterns = [
  { from: path.join(root, 'LICENSE'), to: '.' },
  { from: path.join(root, 'CHANGELOG.md'), to: '.' },
  { from: path.join(SOURCE_DIR, 'dashboards'), to: 'dashboards', noErrorOnMissing: true },
  ...plugins.flatMap((p) => {
    const dir = path.dirname(p.manifest);
    return [
      { from: p.manifest, to: p.out ? `${p.out}/plugin.json` : 'plugin.json' },
      { from: p.readme, to: p.out ? `${p.out}/README.md` : 'README.md' },
      ...assetsOf(p.manifest).map((asset) => ({
        from: path.join(dir === root ? SOURCE_DIR : dir, asset),
        to: p.out ? `${p.out}/${asset}` : asset,
      })),
    ];
  }),
];

// Grafana loads each module.js with SystemJS/AMD and passes its URL as the special 'module'
// dependency; chunks are then fetched relative to it, wherever the plugin is served from.
const publicPath = new VirtualModulesPlugin({
  'node_modules/grafana-public-path.js': `
import amdMetaModule from 'amd-module';
__webpack_public_path__ =
  amdMetaModule && amdMetaModule.uri
    ? amdMetaModule.uri.slice(0, amdMetaModule.uri.lastIndexOf('/') + 1)
    : 'public/plugins/${appPluginJson.id}/';
`,
});

type Env = Record<string, string | boolean | undefined>;

export default function config(env: Env): Configuration {
  const production = Boolean(env.production);
  return {
    context: SOURCE_DIR,
    devtool: production ? 'source-map' : 'eval-source-map',
    entry: Object.fromEntries(plugins.map((p) => [p.out ? `${p.out}/module` : 'module', p.entry])),
    externals,
    mode: production ? 'production' : 'development',
    module: {
      rules: [
        {
          test: /src\/(?:.*\/)?module\.tsx?$/,
          use: [{ loader: 'imports-loader', options: { imports: 'side-effects grafana-public-path' } }],
        },
        {
          exclude: /node_modules/,
          test: /\.[tj]sx?$/,
          use: {
            loader: 'swc-loader',
            options: {
              jsc: {
                baseUrl: SOURCE_DIR,
                target: 'es2015',
                parser: { syntax: 'typescript', tsx: true, dynamicImport: true },
              },
            },
          },
        },
        { test: /\.css$/, use: ['style-loader', 'css-loader'] },
        { test: /\.(png|jpe?g|gif|svg)$/, type: 'asset/resource', generator: { filename: '[hash][ext]' } },
      ],
    },
    optimization: {
      minimize: production,
      minimizer: [new TerserPlugin({ terserOptions: { compress: { drop_console: ['log', 'info'] } } })],
    },
    output: {
      // Keep the backend executables that `go build` puts beside the datasource's module.
      clean: { keep: /(.*?_(amd64|arm(64)?)(\.exe)?|go_plugin_build_manifest)$/ },
      filename: '[name].js',
      chunkFilename: production ? '[name].js?_cache=[contenthash]' : '[name].js',
      library: { type: 'amd' },
      path: DIST_DIR,
      publicPath: `public/plugins/${appPluginJson.id}/`,
      uniqueName: appPluginJson.id,
    },
    plugins: [
      publicPath,
      new CopyWebpackPlugin({ patterns: copyPatterns }),
      new ReplaceInFileWebpackPlugin([
        {
          dir: DIST_DIR,
          test: [/(^|\/)plugin\.json$/, /(^|\/)README\.md$/],
          rules: [
            { search: /%VERSION%/g, replace: version },
            { search: /%TODAY%/g, replace: new Date().toISOString().substring(0, 10) },
            { search: /%PLUGIN_ID%/g, replace: appPluginJson.id },
          ],
        },
      ]),
      new webpack.BannerPlugin({ banner: `/* ${appPluginJson.id}@${version} */`, raw: true, entryOnly: true }),
    ],
    resolve: {
      extensions: ['.js', '.jsx', '.ts', '.tsx'],
      modules: [SOURCE_DIR, 'node_modules'],
    },
  };
}
