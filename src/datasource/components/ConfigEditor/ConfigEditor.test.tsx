import React, { useState } from 'react';
import { fireEvent, render, screen } from '@testing-library/react';
import type { DataSourceSettings } from '@grafana/data';

import { ConfigEditor } from './ConfigEditor';
import type { VigilOptions, VigilSecureOptions } from '../../types';
import { testIds } from '../testIds';

function settings(jsonData: VigilOptions, secureJsonFields: Record<string, boolean> = {}) {
  return {
    id: 1,
    uid: 'vigil',
    orgId: 1,
    name: 'Vigil CDP',
    type: 'vigil-cdp-datasource',
    jsonData,
    secureJsonFields,
    readOnly: false,
  } as unknown as DataSourceSettings<VigilOptions, VigilSecureOptions>;
}

// Holds the options like Grafana's datasource settings page does, so typing is seen as it happens.
function Harness({
  initial,
  onChange,
}: {
  initial: DataSourceSettings<VigilOptions, VigilSecureOptions>;
  onChange: jest.Mock;
}) {
  const [options, setOptions] = useState(initial);
  return (
    <ConfigEditor
      options={options}
      onOptionsChange={(o) => {
        onChange(o);
        setOptions(o);
      }}
    />
  );
}

describe('ConfigEditor', () => {
  it('adds an agent and flags an invalid URL as it is typed', () => {
    const onChange = jest.fn();
    render(<Harness initial={settings({ agents: [] })} onChange={onChange} />);
    fireEvent.click(screen.getByTestId(testIds.configEditor.addAgent));
    fireEvent.change(screen.getByTestId(testIds.configEditor.agentName(0)), { target: { value: 'db-1' } });
    fireEvent.change(screen.getByTestId(testIds.configEditor.agentUrl(0)), { target: { value: 'db-1:7070' } });
    expect(screen.getByText('must be an absolute http or https URL')).toBeInTheDocument();
    fireEvent.change(screen.getByTestId(testIds.configEditor.agentUrl(0)), { target: { value: 'http://db-1:7070' } });
    expect(screen.queryByText('must be an absolute http or https URL')).not.toBeInTheDocument();
    expect(onChange.mock.calls.at(-1)[0].jsonData.agents).toEqual([{ name: 'db-1', url: 'http://db-1:7070' }]);
  });

  it('flags a poll interval under one second', () => {
    render(<Harness initial={settings({ pollInterval: '500ms' })} onChange={jest.fn()} />);
    expect(screen.getByText('must be a duration of at least 1s, e.g. 10s')).toBeInTheDocument();
  });

  it('never shows a configured token, only that it is set', () => {
    render(<Harness initial={settings({}, { readToken: true })} onChange={jest.fn()} />);
    const configured = screen.getAllByDisplayValue('configured');
    expect(configured).toHaveLength(1);
    expect(configured[0]).toBeDisabled();
  });

  it('sends a new control token only in secureJsonData', () => {
    const onChange = jest.fn();
    render(<Harness initial={settings({})} onChange={onChange} />);
    fireEvent.change(screen.getByTestId(testIds.configEditor.controlToken), {
      target: { value: 's3cret-control-token' },
    });
    const last = onChange.mock.calls.at(-1)[0];
    expect(last.secureJsonData).toEqual({ controlToken: 's3cret-control-token' });
    expect(JSON.stringify(last.jsonData)).not.toContain('s3cret');
  });
});
