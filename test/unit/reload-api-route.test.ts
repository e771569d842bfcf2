// POST /api/reload on an in-process ApiServer (a controller that is never started, no switch):
// token check, the reloader's result as the reply, statuses, and the route without a reloader.
import assert from 'node:assert/strict';
import { Controller } from '../../controller/controller.ts';
import { parseConfig } from '../../controller/config.ts';
import { silentLogger } from '../../controller/log.ts';
import { ApiServer, type ReloadHandle } from '../../controller/api/index.ts';
import type { ReloadResult } from '../../controller/reload/reloader.ts';

const TOKEN = 'route-token';

describe('reload: POST /api/reload', () => {
  const servers: ApiServer[] = [];
  after(async () => { for (const s of servers) await s.stop(); });

  async function serve(reloader?: ReloadHandle): Promise<string> {
    const controller = new Controller(parseConfig({}), silentLogger);
    const api = new ApiServer(controller, { enabled: true, host: '127.0.0.1', port: 0, token: TOKEN }, silentLogger, reloader);
    servers.push(api);
    const { port } = await api.start();
    return `http://127.0.0.1:${port}`;
  }
  const post = (base: string, token?: string, body?: string) => fetch(`${base}/api/reload`, {
    method: 'POST', body,
    headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...(body ? { 'Content-Type': 'application/json' } : {}) },
  });

  it('needs the token, then answers with the changes', async () => {
    const triggers: (string | undefined)[] = [];
    const base = await serve({ reload: async (t) => { triggers.push(t); return { ok: true, changes: ['log.level: info -> debug'], restartNeeded: ['listen.port: 1 -> 2'] }; } });
    assert.equal((await post(base)).status, 401);
    assert.equal((await post(base, 'wrong')).status, 401);
    assert.deepEqual(triggers, []);
    const res = await post(base, TOKEN);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { changes: ['log.level: info -> debug'], restartNeeded: ['listen.port: 1 -> 2'] });
    const withBody = await post(base, TOKEN, '{}');
    assert.equal(withBody.status, 200);
    assert.deepEqual(triggers, ['api', 'api']);
    const bad = await post(base, TOKEN, '{"force":true}');
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { error: string }).error, /unknown field 'force'/);
  });

  for (const [status, error] of [[400, "x.rules:3: option \"pcre\": not supported"], [409, "services.echo.backends: cannot remove server2"]] as const) {
    it(`a failed reload is a ${status} with its error`, async () => {
      const result: ReloadResult = { ok: false, status, error };
      const base = await serve({ reload: async () => result });
      const res = await post(base, TOKEN);
      assert.equal(res.status, status);
      assert.deepEqual(await res.json(), { error, status });
    });
  }

  it('is 501 without a reloader', async () => {
    const res = await post(await serve(), TOKEN);
    assert.equal(res.status, 501);
  });
});
