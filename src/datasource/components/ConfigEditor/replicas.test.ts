import {
  connectionHasPassword,
  gossipKeyProblem,
  hostPortProblem,
  parseJoin,
  setClusterKey,
  setConnection,
  validateShared,
  type SharedOptions,
} from './replicas';

const BAD_KEY = 'must be 16, 24 or 32 bytes in base64 (openssl rand -base64 32)';
const base = (): SharedOptions => ({ agents: [{ name: 'a', url: 'http://a:7070' }] });

describe('hostPortProblem', () => {
  it.each([
    { address: 'g1:7946', member: true, problem: '' },
    { address: '10.0.0.11:1', member: true, problem: '' },
    { address: '[fd00::1]:65535', member: true, problem: '' },
    { address: 'g1', member: true, problem: '"g1" has no port' },
    { address: '[fd00::1]', member: true, problem: '"[fd00::1]" has no port' },
    { address: '[fd00::1:7946', member: true, problem: `"[fd00::1:7946" lacks the ']' closing its IPv6 address` },
    {
      address: 'fd00::1:7946',
      member: true,
      problem: '"fd00::1:7946" has too many colons (an IPv6 address goes in brackets: [fd00::1]:7946)',
    },
    { address: ':7946', member: true, problem: '":7946" has no host' },
    { address: 'g1:0', member: true, problem: '"g1:0": the port must be a number from 1 to 65535' },
    { address: 'g1:65536', member: true, problem: '"g1:65536": the port must be a number from 1 to 65535' },
    { address: 'g1:http', member: true, problem: '"g1:http": the port must be a number from 1 to 65535' },
    { address: 'g1:', member: true, problem: '"g1:": the port must be a number from 1 to 65535' },
    // A replica's own address, as the backend reads cluster.bind and cluster.advertise.
    { address: ':7946', member: false, problem: '' },
    { address: '0.0.0.0:0', member: false, problem: '' },
    { address: 'g1:65536', member: false, problem: '"g1:65536": the port must be a number from 0 to 65535' },
  ])('$address (member: $member)', ({ address, member, problem }) => {
    expect(hostPortProblem(address, { member })).toBe(problem);
  });
});

describe('gossipKeyProblem', () => {
  it.each([
    { name: '16 bytes', key: Buffer.alloc(16, 1).toString('base64'), problem: '' },
    { name: '24 bytes', key: Buffer.alloc(24, 2).toString('base64'), problem: '' },
    { name: '32 bytes', key: Buffer.alloc(32, 3).toString('base64'), problem: '' },
    { name: '15 bytes', key: Buffer.alloc(15, 1).toString('base64'), problem: BAD_KEY },
    { name: '33 bytes', key: Buffer.alloc(33, 1).toString('base64'), problem: BAD_KEY },
    {
      name: '16 bytes without padding',
      key: Buffer.alloc(16, 1).toString('base64').replace(/=+$/, ''),
      problem: BAD_KEY,
    },
    { name: '32 bytes in URL-safe base64', key: Buffer.alloc(32, 0xfb).toString('base64url') + '=', problem: BAD_KEY },
    { name: 'surrounded by spaces', key: ` ${Buffer.alloc(32, 3).toString('base64')} `, problem: BAD_KEY },
    { name: 'a pass phrase', key: 'correct horse battery staple', problem: BAD_KEY },
  ])('$name', ({ key, problem }) => {
    expect(gossipKeyProblem(key)).toBe(problem);
  });
});

describe('connectionHasPassword', () => {
  it.each([
    { connection: 'postgres://vigil@db:5432/vigil', has: false },
    { connection: 'postgres://vigil:s3cret@db:5432/vigil', has: true },
    { connection: 'postgresql://vigil:s3cret@db/vigil?sslmode=verify-full', has: true },
    { connection: 'postgres://vigil:@db/vigil', has: false },
    { connection: 'postgres://db/vigil?user=vigil&password=s3cret', has: true },
    { connection: 'host=db dbname=vigil user=vigil', has: false },
    { connection: 'host=db dbname=vigil password=s3cret', has: true },
    { connection: "host=db password = 's3cret'", has: true },
    { connection: 'host=db dbname=passwords', has: false },
  ])('$connection', ({ connection, has }) => {
    expect(connectionHasPassword(connection)).toBe(has);
  });
});

describe('validateShared', () => {
  it('accepts no shared history at all, and a complete one', () => {
    expect(validateShared(base(), {})).toEqual({});
    const complete: SharedOptions = {
      ...base(),
      history: { postgres: 'postgres://vigil@db:5432/vigil' },
      cluster: { join: ['g1:7946', 'g2:7946'], profile: 'local', bind: '0.0.0.0:7946' },
    };
    expect(validateShared(complete, { 'cluster.secretKey': Buffer.alloc(32).toString('base64') })).toEqual({});
  });

  it('reports what the backend reports, under the same paths', () => {
    const jsonData = {
      ...base(),
      history: { postgres: 'db.example' },
      cluster: { join: ['g1'], advertise: '10.0.0.11', profile: 'wan' },
    } as unknown as SharedOptions;
    expect(validateShared(jsonData, { 'cluster.secretKey': 'c2hvcnQ=' })).toEqual({
      'history.postgres':
        'is not a PostgreSQL connection string: write postgres://user@host:5432/database or host=... dbname=...',
      'cluster.join[0]': 'must be host:port: "g1" has no port',
      'cluster.advertise': 'must be host:port: "10.0.0.11" has no port',
      'cluster.profile': 'must be "lan" or "local"',
      'cluster.secretKey': BAD_KEY,
    });
  });

  it('asks for the shared history when the agents are divided without one', () => {
    expect(validateShared({ ...base(), cluster: {} }, {})).toEqual({
      cluster: 'dividing the agents among monitors needs a shared history: set history.postgres too',
    });
  });

  it('checks a typed gossip key only while the agents are divided', () => {
    expect(validateShared({ ...base(), history: { postgres: 'host=db' } }, { 'cluster.secretKey': 'x' })).toEqual({});
  });
});

describe('editing jsonData', () => {
  it('parses the members to join on commas and spaces', () => {
    expect(parseJoin(' g1:7946,g2:7946  g3:7946 ,, ')).toEqual(['g1:7946', 'g2:7946', 'g3:7946']);
    expect(parseJoin(' , ')).toEqual([]);
  });

  it('keeps the connection as typed and drops history when it is cleared', () => {
    const typed = setConnection(base(), 'host=db ');
    expect(typed.history).toEqual({ postgres: 'host=db ' });
    expect(setConnection(typed, ' ')).toEqual(base());
  });

  it('drops an emptied cluster key but keeps the cluster', () => {
    const joined = setClusterKey({ ...base(), cluster: { profile: 'lan' } }, 'join', ['g1:7946']);
    expect(joined.cluster).toEqual({ profile: 'lan', join: ['g1:7946'] });
    expect(setClusterKey(joined, 'join', []).cluster).toEqual({ profile: 'lan' });
  });
});
