'use strict';
const crash = require('./oracle');
function* gen() {
  yield 1;
  yield afterYield();
}
function afterYield() { return crash(); }
async function worker() {
  await null;
  const it = gen();
  it.next();
  it.next();
}
async function main() {
  await Promise.resolve();
  await worker();
}
main();
