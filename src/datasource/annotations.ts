import { FieldType, type AnnotationEvent, type DataFrame, type Field } from '@grafana/data';

// Dashboard annotations from the events query: one annotation per event row (a state change, a
// restart or stop, a diagnosis). The fields read are those of the events frame (docs/datasource.md);
// any that a frame lacks are left out of the text rather than failing the annotation.

const valueAt = (field: Field | undefined, i: number): string => {
  const v = field?.values[i];
  return v === undefined || v === null || v === '' ? '' : String(v);
};

export function eventsToAnnotations(frames: DataFrame[]): AnnotationEvent[] {
  const events: AnnotationEvent[] = [];
  for (const frame of frames) {
    const time = frame.fields.find((f) => f.type === FieldType.time);
    if (!time) {
      continue;
    }
    const byName = (name: string) => frame.fields.find((f) => f.name === name);
    const [agent, process, kind, from, to, action, by, result, reason, error] = [
      'agent',
      'process',
      'kind',
      'from',
      'to',
      'action',
      'by',
      'result',
      'reason',
      'error',
    ].map(byName);
    for (let i = 0; i < frame.length; i++) {
      const where = [valueAt(agent, i), valueAt(process, i)].filter(Boolean).join(' / ');
      const what = valueAt(action, i)
        ? `${valueAt(action, i)}${valueAt(result, i) ? ` ${valueAt(result, i)}` : ''}${valueAt(by, i) ? ` (by ${valueAt(by, i)})` : ''}`
        : valueAt(to, i)
          ? `${valueAt(from, i) || '?'} → ${valueAt(to, i)}`
          : valueAt(kind, i);
      const title = [where, what].filter(Boolean).join(': ');
      const text = [valueAt(reason, i), valueAt(error, i)].filter(Boolean).join('; ');
      events.push({
        time: Number(time.values[i]),
        title,
        text: text || title,
        tags: [valueAt(agent, i), valueAt(kind, i), valueAt(to, i)].filter(Boolean),
      });
    }
  }
  return events;
}
