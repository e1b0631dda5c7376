'use strict';
const { record } = require('./oracle');
let recording = true;
function cb(x) {
  if (recording) record();
  return x + 1;
}
function caller(a) {
  return a.map(cb);
}
%NeverOptimizeFunction(caller);
const end = Date.now() + 120000;
let s = 0;
while (Date.now() < end) {
  s += caller([s & 7, 2])[0];
  recording = false;
}
