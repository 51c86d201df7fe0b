// Waits out wrangler dev's start-up rebuild before a test sends anything.
//
// wrangler 4.x runs the [build] command a second time as soon as its file watcher is
// ready (BundlerController: watcher.on('ready') → runCustomBuild: "The file
// worker/src,core/src changed, restarting build..."), shortly after the first start and
// often after /health already answers, then restarts the worker. A POST in flight at that
// moment gets 503 "Your worker restarted mid-request" (only GET/HEAD are retried). The
// stack helper (stack.mjs) returns at the first /health; this waits for the second start.

/**
 * Resolve once `worker.log()` shows the watcher's rebuild and a "Ready on" after it, and
 * /health answers; resolve `false` after `timeoutMs` if no rebuild came (a wrangler that
 * no longer does it).
 */
export async function afterStartupRebuild(worker, { timeoutMs = 30_000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const log = worker.log();
    const at = log.lastIndexOf('changed, restarting build');
    if (at >= 0 && log.indexOf('Ready on', at) >= 0) {
      for (;;) {
        try {
          const res = await fetch(`${worker.url}/health`, { signal: AbortSignal.timeout(5_000) });
          if (res.ok) return true;
        } catch { /* restarting */ }
        if (Date.now() > deadline + 60_000) throw new Error('the worker did not come back after its start-up rebuild');
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 250));
  }
}
