import type * as http from 'node:http';
import type { Agent } from './agent';

export function createHandler(_agent: Agent): http.RequestListener {
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://agent');
    if (url.pathname === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: 'ok' }));
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { code: 'not_found', message: `no such path ${url.pathname}` } }));
  };
}
