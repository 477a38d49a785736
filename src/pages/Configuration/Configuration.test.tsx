import React from 'react';
import { screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';

import Configuration, { templateOptions } from './Configuration';
import { differences } from './install';
import { apiRule, buildRuleGroup, DEFAULT_TEMPLATE_OPTIONS } from '../alerting/rules';
import { testIds } from '../../shared/testIds';
import { httpError, useBackend, useDatasources, useRole, vigilSettings } from '../../shared/testing/fakes';
import { renderInRouter } from '../testing/render';

const ds = vigilSettings('vigil-cdp', { pollInterval: '30s', defaults: { rpo: '2m', budget: { restart: '1m' } } });
const rules = buildRuleGroup(templateOptions(ds)).rules;

async function chooseFolder(name: string) {
  const input = screen.getByTestId(testIds.config.folder).querySelector('input')!;
  await userEvent.type(input, `${name}{Enter}`);
}

describe('Configuration page', () => {
  beforeAll(() => {
    // Combobox measures its options' text on a canvas, which jsdom does not draw.
    HTMLCanvasElement.prototype.getContext = (() => ({
      measureText: (text: string) => ({ width: text.length * 7 }),
    })) as unknown as typeof HTMLCanvasElement.prototype.getContext;
    // Its option list watches its scroll edges.
    global.IntersectionObserver = class {
      observe() {}
      unobserve() {}
      disconnect() {}
    } as unknown as typeof IntersectionObserver;
  });

  beforeEach(() => {
    useRole('Admin');
    useDatasources([ds]);
  });

  it("takes the rules' thresholds from the datasource settings", () => {
    expect(templateOptions(ds)).toEqual({
      datasourceUid: 'vigil-cdp',
      pollIntervalSeconds: 30,
      restartAllowanceSeconds: 60,
      rpoSeconds: 120,
    });
    expect(templateOptions(vigilSettings('x'))).toEqual({ datasourceUid: 'x', ...DEFAULT_TEMPLATE_OPTIONS });
  });

  it('previews the rules with their status, then installs the missing and changed ones', async () => {
    const backend = useBackend();
    const installed = new Map<string, unknown>([
      [rules[0].uid, apiRule(rules[0], 'f1')],
      [rules[1].uid, { ...apiRule(rules[1], 'f1'), for: '1m' }],
      [rules[2].uid, { ...apiRule(rules[2], 'f1'), provenance: 'file' }],
    ]);
    backend.get.mockImplementation((url: string) => {
      if (url === '/api/folders') {
        return Promise.resolve([{ uid: 'f1', title: 'Vigil CDP' }]);
      }
      const uid = url.split('/').pop()!;
      return installed.has(uid)
        ? Promise.resolve(installed.get(uid))
        : Promise.reject(httpError(404, 'not_found', 'no rule'));
    });
    backend.post.mockImplementation((_url: string, body: { uid: string }) => {
      installed.set(body.uid, body);
      return Promise.resolve(body);
    });
    backend.put.mockImplementation((_url: string, body: { uid: string }) => {
      installed.set(body.uid, body);
      return Promise.resolve(body);
    });
    renderInRouter(<Configuration settings={{}} />);
    expect(screen.getByTestId(testIds.config.install)).toBeDisabled();
    await chooseFolder('Vigil CDP');
    await userEvent.click(screen.getByTestId(testIds.config.preview));
    const status = screen.getByTestId(testIds.config.status);
    await waitFor(() => expect(status).toHaveTextContent('installed, up to date'));
    expect(status).toHaveTextContent('differs from the template: pending period');
    expect(status).toHaveTextContent('provisioned from files');
    expect(status).toHaveTextContent('not installed');
    expect(screen.getByTestId(testIds.config.install)).toHaveTextContent('Install 4 rules');

    await userEvent.click(screen.getByTestId(testIds.config.install));
    await waitFor(() => expect(status).not.toHaveTextContent('not installed'));
    expect(backend.post).toHaveBeenCalledTimes(3);
    expect(backend.put).toHaveBeenCalledWith(
      `/api/v1/provisioning/alert-rules/${rules[1].uid}`,
      expect.objectContaining({ folderUID: 'f1', ruleGroup: 'Vigil CDP', for: rules[1].for }),
      expect.objectContaining({ headers: { 'X-Disable-Provenance': 'true' } })
    );
    expect(backend.post.mock.calls[0][1]).toMatchObject({ folderUID: 'f1', data: rules[3].data });
  });

  it('says why rules were not installed', async () => {
    const backend = useBackend();
    backend.get.mockImplementation((url: string) =>
      url === '/api/folders'
        ? Promise.resolve([{ uid: 'f1', title: 'Ops' }])
        : Promise.reject(httpError(404, 'not_found', 'no rule'))
    );
    backend.post.mockRejectedValue({
      status: 400,
      data: { message: 'invalid alert rule: condition D does not exist' },
    });
    renderInRouter(<Configuration settings={{}} />);
    await chooseFolder('Ops');
    await userEvent.click(screen.getByTestId(testIds.config.preview));
    await waitFor(() => expect(screen.getByTestId(testIds.config.install)).toHaveTextContent('Install 6 rules'));
    await userEvent.click(screen.getByTestId(testIds.config.install));
    expect(await screen.findByText(/CDP client failed: invalid alert rule/)).toBeInTheDocument();
  });

  it('lets a non-admin preview but not install', () => {
    useRole('Editor');
    useBackend().get.mockResolvedValue([]);
    renderInRouter(<Configuration settings={{}} />);
    expect(screen.getByText('Installing needs the Admin role')).toBeInTheDocument();
  });

  it('compares an installed rule with the template, ignoring what Grafana adds', () => {
    const rule = rules[0];
    const have = apiRule(rule, 'f1');
    const withDefaults = {
      ...have,
      for: '0s',
      data: have.data.map((q) => ({ ...q, model: { ...q.model, hide: false } })),
    };
    expect(differences(rule, 'f1', withDefaults as never)).toEqual([]);
    expect(differences(rule, 'f2', withDefaults as never)).toEqual(['folderUID']);
    expect(differences(rule, 'f1', { ...withDefaults, labels: { severity: 'info' } } as never)).toEqual(['labels']);
  });
});
