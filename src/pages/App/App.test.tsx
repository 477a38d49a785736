import { ROUTES } from '../../constants';
import { routeOf } from './App';

describe('routeOf', () => {
  it.each([
    ['/a/vigil-cdp-app', { page: ROUTES.Fleet }],
    ['/a/vigil-cdp-app/fleet', { page: ROUTES.Fleet }],
    ['/a/vigil-cdp-app/agent/db-1', { page: ROUTES.Agent, agent: 'db-1' }],
    ['/a/vigil-cdp-app/agent/db%201', { page: ROUTES.Agent, agent: 'db 1' }],
    ['/a/vigil-cdp-app/agent', { page: ROUTES.Fleet }],
    ['/a/vigil-cdp-app/configuration', { page: ROUTES.Configuration }],
    ['/a/vigil-cdp-app/nothing-here', { page: ROUTES.Fleet }],
    ['/somewhere/else', { page: ROUTES.Fleet }],
  ])('%s', (path, route) => {
    expect(routeOf(path)).toEqual(route);
  });
});
