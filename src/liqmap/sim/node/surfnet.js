// liqmap's launcher of surfpool's surfnet: a real Solana JSON-RPC server on 127.0.0.1,
// shipped as the prebuilt Node addon of the npm package @solana/surfpool-linux-x64-gnu
// (its JS wrapper is not published). Prints one JSON line {"rpcUrl", "wsUrl"} on stdout,
// keeps draining the instance's events (the RPC server stalls otherwise), and stops when
// stdin closes (the parent died) or on SIGTERM/SIGINT.
"use strict";

const path = require("path");

function findAddon() {
  if (process.env.LIQMAP_SURFPOOL_ADDON) return process.env.LIQMAP_SURFPOOL_ADDON;
  const roots = (process.env.LIQMAP_NODE_MODULES || "").split(path.delimiter).filter(Boolean);
  roots.push(process.cwd());
  return require.resolve(
    "@solana/surfpool-linux-x64-gnu/surfpool-sdk.linux-x64-gnu.node",
    { paths: roots },
  );
}

const { Surfnet } = require(findAddon());
const surfnet = Surfnet.startWithConfig({ offline: true });
const drain = setInterval(() => surfnet.drainEvents(), 100);

let stopping = false;
function shutdown() {
  if (stopping) return;
  stopping = true;
  clearInterval(drain);
  try {
    surfnet.stop();
  } catch (err) {
    process.stderr.write(`surfnet stop: ${err}\n`);
  }
  process.exit(0);
}

process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
process.stdin.on("end", shutdown);
process.stdin.on("error", shutdown);
process.stdin.resume();
process.stdout.write(JSON.stringify({ rpcUrl: surfnet.rpcUrl, wsUrl: surfnet.wsUrl }) + "\n");
