'use strict';
const { record } = require('./oracle');
function target(x, r) {
  if (r) record();
  const y = x * 3 + 1;
  return y > 10 ? y - 10 : y;
}
function caller(i, r) {
  return target(i, r);
}
const end = Date.now() + 120000;
let s = 0;
for (let first = true; Date.now() < end; first = false) s += caller(s & 7, first);
