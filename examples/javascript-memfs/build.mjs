// Builds memfs.js into a WebAssembly component with componentize-js's node API.
//
//   node build.mjs SOURCE.js WIT_DIR OUT.wasm
//
// componentize-js is found in $NFSGW_WASM_HOME/js/node_modules (scripts/wasm-toolchain.sh --js).
import { writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [source, wit, out] = process.argv.slice(2);
if (!out) {
  console.error('usage: node build.mjs SOURCE.js WIT_DIR OUT.wasm');
  process.exit(2);
}
const home = process.env.NFSGW_WASM_HOME ?? join(homedir(), '.cache/nfsgw/wasm');
const api = join(home, 'js/node_modules/@bytecodealliance/componentize-js/src/componentize.js');
const { componentize } = await import(pathToFileURL(api).href);

const started = Date.now();
const { component } = await componentize({
  sourcePath: resolve(source),
  witPath: resolve(wit),
  worldName: 'plugin',
  // The plugin needs no HTTP. Left on, these make the component import wasi:http, which nfsgw
  // does not provide. Clocks (Date.now) and stdio (console, error reports) stay.
  disableFeatures: ['http', 'fetch-event'],
});
await writeFile(out, component);
console.log(`wrote ${out} (${component.length} bytes) in ${Date.now() - started} ms`);
