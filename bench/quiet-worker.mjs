// The worker in workerd through wrangler's own dev API (`unstable_startWorker`, what
// `wrangler dev` runs) with the DevTools inspector off. Under `wrangler dev` the
// inspector proxy enables the runtime's Network domain, so every subrequest (each object
// call and fetch) emits four inspector events relayed to wrangler's Node process: a cost
// production never pays. The worker's console lines are still printed (logLevel 'log'),
// as under `wrangler dev`: every request's log line is part of what both routes cost.
// Args: <config> <port> <persist dir> <vars JSON>. Prints `ready <url>`; SIGINT/SIGTERM
// dispose of it.
import { unstable_startWorker } from 'wrangler';

const [config, port, persist, varsJson] = process.argv.slice(2);
const bindings = Object.fromEntries(Object.entries(JSON.parse(varsJson)).map(([k, v]) => [k, { type: 'plain_text', value: v }]));
const worker = await unstable_startWorker({
  config,
  bindings,
  dev: { server: { hostname: '127.0.0.1', port: Number(port) }, inspector: false, persist, watch: false, logLevel: 'log' },
});
await worker.ready;
console.log(`ready ${worker.url}`);
const quit = async () => { await worker.dispose(); process.exit(0); };
process.on('SIGINT', quit);
process.on('SIGTERM', quit);
