'use strict';
const crash = require('./oracle');
function recurse(n) {
  if (n === 0) return crash();
  return recurse(n - 1) + 1;
}
recurse(450);
