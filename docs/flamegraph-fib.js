function fib(n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
function top() { let s = 0; for (let i = 0; i < 200; i++) s += fib(25); return s; }
top();
