'use strict';
const crash = require('./oracle');
class Range {
  constructor(n) { this.n = n; }
  *[Symbol.iterator]() {
    for (let i = 0; i < this.n; i++) yield check(i);
  }
}
function check(i) {
  if (i === 2) crash();
  return i;
}
function consume() {
  return new Promise(function executor(resolve) {
    const out = [];
    for (const v of new Range(5)) out.push(v);
    resolve(out);
  });
}
const tag = (strings, ...values) => values.map(function tagged(v) { return v; });
queueMicrotask(function micro() {
  tag`a${1}b${consume()}`;
});
