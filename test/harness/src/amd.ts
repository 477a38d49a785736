// A small AMD loader: what Grafana's SystemJS does for a plugin's module.js. A module declares its
// dependencies by name; the shared libraries are handed over from the harness bundle, 'module' is
// the module's own URL (webpack derives the public path of its chunks from it), and any other name
// is an error that says which name is missing.
type Factory = (...deps: unknown[]) => unknown;
interface Definition {
  deps: string[];
  factory: Factory | Record<string, unknown>;
}

const definitions = new Map<string, Definition>();

export function installDefine() {
  const define = (...args: unknown[]) => {
    const rest = typeof args[0] === 'string' ? args.slice(1) : args;
    const deps = Array.isArray(rest[0]) ? (rest[0] as string[]) : [];
    const factory = (Array.isArray(rest[0]) ? rest[1] : rest[0]) as Definition['factory'];
    const script = document.currentScript as HTMLScriptElement | null;
    if (!script) {
      throw new Error('define() called outside a script the harness loaded');
    }
    definitions.set(script.src, { deps, factory });
  };
  define.amd = {};
  (window as unknown as { define: unknown }).define = define;
}

export async function loadAmdModule(url: string, shared: Record<string, unknown>): Promise<Record<string, unknown>> {
  const absolute = new URL(url, window.location.href).href;
  await new Promise<void>((resolve, reject) => {
    const script = document.createElement('script');
    script.src = absolute;
    script.onload = () => resolve();
    script.onerror = () => reject(new Error(`could not load ${absolute}`));
    document.head.appendChild(script);
  });
  const definition = definitions.get(absolute);
  if (!definition) {
    throw new Error(`${absolute} loaded but defined no AMD module`);
  }
  if (typeof definition.factory !== 'function') {
    return definition.factory;
  }
  const exports: Record<string, unknown> = {};
  const args = definition.deps.map((dep) => {
    if (dep === 'exports') {
      return exports;
    }
    if (dep === 'module') {
      return { uri: absolute, id: absolute };
    }
    if (!(dep in shared)) {
      throw new Error(`${absolute} needs "${dep}", which Grafana provides but the harness does not`);
    }
    return shared[dep];
  });
  const result = definition.factory(...args);
  return (result as Record<string, unknown>) ?? exports;
}
