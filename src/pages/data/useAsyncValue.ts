import { type DependencyList, useCallback, useEffect, useState } from 'react';

export interface AsyncValue<T> {
  value?: T;
  error?: Error;
  loading: boolean;
  reload: () => void;
}

/** Runs `load` when deps change (or on reload) and keeps only the latest answer; the previous
 * answer stays on screen while the next one loads. */
export function useAsyncValue<T>(load: () => Promise<T>, deps: DependencyList): AsyncValue<T> {
  const [state, setState] = useState<Omit<AsyncValue<T>, 'reload'>>({ loading: true });
  const [tick, setTick] = useState(0);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  useEffect(() => {
    let current = true;
    load().then(
      (value) => current && setState({ value, loading: false }),
      (error: unknown) =>
        current && setState({ error: error instanceof Error ? error : new Error(String(error)), loading: false })
    );
    return () => {
      current = false;
    };
    // The caller's deps decide when to load again.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick]);
  return { ...state, reload };
}
