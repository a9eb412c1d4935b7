// Writes a gzip and a brotli copy of every text file the gateway serves (web/ and the allowed
// libraries in web/node_modules) under web/.compressed/, keeping their paths:
//   web/js/main.js                       -> web/.compressed/app/js/main.js.br, .gz
//   web/node_modules/katex/dist/x.css    -> web/.compressed/vendor/katex/dist/x.css.br, .gz
// The gateway serves a copy only when it is at least as new as its original, so a file
// edited after this ran is served as it is, never stale. Run by `make web` and the image build.
//   node scripts/precompress-web.mjs [web-dir]

import { mkdirSync, readFileSync, readdirSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";

const web = process.argv[2] || "web";
const out = join(web, ".compressed");
// The library folders the page loads from (packages in VENDOR_PACKAGES of
// gateway/tinychat_gateway/static.py); each folder's own files, not its subfolders: the
// hundreds of separate highlight.js languages are never loaded.
const VENDOR = [
  ["marked", "lib"],
  ["@highlightjs/cdn-assets", "es"],
  ["katex", "dist"],
  ["dompurify", "dist"],
];
const TEXT = /\.(js|mjs|css|html|svg|json|webmanifest|txt|map)$/;
const SKIP_APP = new Set(["node_modules", "tests", ".compressed", "package.json", "package-lock.json"]);
const MIN_BYTES = 512; // smaller files gain nothing worth a second request path

function* files(dir, skip = new Set(), deep = true) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name.startsWith(".") || skip.has(entry.name)) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (deep) yield* files(path);
    }
    else if (entry.isFile() && TEXT.test(entry.name)) yield path;
  }
}

let count = 0;
let before = 0;
let after = 0;

function compress(source, target) {
  const data = readFileSync(source);
  if (data.length < MIN_BYTES) return;
  const stat = statSync(source);
  mkdirSync(dirname(target), { recursive: true });
  const br = brotliCompressSync(data, {
    params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: data.length },
  });
  writeFileSync(`${target}.br`, br);
  writeFileSync(`${target}.gz`, gzipSync(data, { level: 9 }));
  // The copies carry the original's time: "at least as new" then means "made from this version".
  for (const suffix of [".br", ".gz"]) utimesSync(`${target}${suffix}`, stat.atime, stat.mtime);
  count++;
  before += data.length;
  after += br.length;
}

for (const path of files(web, SKIP_APP)) compress(path, join(out, "app", relative(web, path)));
for (const [name, folder] of VENDOR) {
  const root = join(web, "node_modules", name);
  try {
    statSync(join(root, folder));
  } catch {
    continue;
  }
  for (const path of files(join(root, folder), new Set(), false)) compress(path, join(out, "vendor", name, relative(root, path)));
}
console.log(`precompressed ${count} files: ${(before / 1024).toFixed(0)} KiB -> ${(after / 1024).toFixed(0)} KiB brotli`);
