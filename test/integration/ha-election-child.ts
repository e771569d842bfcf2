// A candidate in its own process, so a test can kill -9 it (a leader dying without resigning).
// Usage: node --import tsx ha-election-child.ts <endpoint,...> <key> <name> [ttlSec]
// Prints one JSON line per election event on stdout.
import { Election } from '../../controller/ha/election.ts';
import { Logger } from '../../controller/log.ts';

const [endpoints, key, name, ttl] = process.argv.slice(2);
const election = new Election({ endpoints: endpoints.split(','), key, name, ttlSec: ttl ? Number(ttl) : 2, logger: new Logger('warn') });
const say = (event: string, data: Record<string, unknown> = {}): void => { process.stdout.write(JSON.stringify({ event, ...data }) + '\n'); };
election.on('leader', (gen) => say('leader', { generationId: gen.toString() }));
election.on('follower', (f) => say('follower', { leader: f.leader, generationId: f.generationId.toString() }));
election.on('deposed', (reason) => say('deposed', { reason }));
election.start();
process.on('SIGTERM', () => { void election.stop().then(() => process.exit(0)); });
