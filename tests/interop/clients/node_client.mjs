// An interop client on Node.js's own HTTP/2 (node:http2, nghttp2 inside, its
// default settings). Same subcommands and JSON output as goclient:
//
//   node node_client.mjs [--ca FILE] get URL | concurrent URL N | download URL
//        | upload URL FILE | trailers URL FILE | cancel URL NEXT
import http2 from "node:http2";
import crypto from "node:crypto";
import fs from "node:fs";

const argv = process.argv.slice(2);
let ca;
if (argv[0] === "--ca") {
  ca = fs.readFileSync(argv[1]);
  argv.splice(0, 2);
}
const [command, url, extra] = argv;
const origin = new URL(url).origin;
const session = http2.connect(origin, ca ? { ca } : {});
session.on("error", (err) => fail(err));

function fail(err) {
  console.error(String(err && err.stack ? err.stack : err));
  process.exit(1);
}

// One request; resolves with status, digest, size, trailers (and the body
// when asked), or reads only `limit` bytes and cancels.
function request(target, { method = "GET", body, keep = false, limit } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(target);
    const stream = session.request({ ":method": method, ":path": u.pathname + u.search });
    const hash = crypto.createHash("sha256");
    const parts = [];
    let status = 0;
    let size = 0;
    let trailers = {};
    stream.on("response", (headers) => { status = headers[":status"]; });
    stream.on("trailers", (t) => { trailers = t; });
    stream.on("data", (chunk) => {
      hash.update(chunk);
      size += chunk.length;
      if (keep) parts.push(chunk);
      if (limit !== undefined && size >= limit) {
        stream.close(http2.constants.NGHTTP2_CANCEL);
        resolve({ cancelled_after: size });
      }
    });
    stream.on("end", () => resolve({
      status, bytes: size, sha256: hash.digest("hex"), trailers,
      body: keep ? Buffer.concat(parts).toString("latin1") : undefined,
    }));
    stream.on("error", (err) => { if (limit === undefined) reject(err); });
    if (body !== undefined) {
      // In 64 KiB writes, as a stream from disk or a socket would come.
      let offset = 0;
      const pump = () => {
        while (offset < body.length) {
          const piece = body.subarray(offset, offset + 65536);
          offset += piece.length;
          if (!stream.write(piece)) { stream.once("drain", pump); return; }
        }
        stream.end();
      };
      pump();
    } else {
      stream.end();
    }
  });
}

async function main() {
  let out;
  if (command === "get" || command === "download") {
    out = await request(url);
  } else if (command === "concurrent") {
    const n = Number(extra);
    await request(url); // the connection and its SETTINGS first
    const results = await Promise.all(Array.from({ length: n }, () => request(url)));
    out = { ok: results.filter((r) => r.status === 200).length };
  } else if (command === "upload") {
    out = await request(url, { method: "POST", body: fs.readFileSync(extra), keep: true });
  } else if (command === "trailers") {
    out = await request(url, { method: "POST", body: fs.readFileSync(extra) });
  } else if (command === "cancel") {
    const first = await request(url, { limit: 1 << 20 });
    out = { ...(await request(extra)), ...first };
  } else {
    throw new Error(`unknown command ${command}`);
  }
  out.proto = session.alpnProtocol || "h2c";
  delete out.trailers?.[":status"];
  console.log(JSON.stringify(out));
  session.close();
}

main().catch(fail);
