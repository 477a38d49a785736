import React from 'react';
import { render } from '@testing-library/react';
import { MemoryRouter } from 'react-router-dom-v5-compat';

/** Renders inside a router, as Grafana renders app pages: @grafana/ui links need one. */
export function renderInRouter(node: React.ReactElement) {
  return render(<MemoryRouter>{node}</MemoryRouter>);
}
