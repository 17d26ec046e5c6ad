/**
 * `require` for the modules that load CommonJS packages synchronously (koffi, @node-rs/crc32).
 * A CommonJS file of its own: the ES module build (dist/) and the CommonJS build (dist/cjs/)
 * both use it, and neither needs `import.meta.url` (a CommonJS module cannot parse it). It
 * resolves from inside the package, as `createRequire(import.meta.url)` did.
 */
export const nodeRequire = require;
