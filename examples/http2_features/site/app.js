// Six slow requests at once: over HTTP/2 they share one connection and
// finish together, in about the time of one.
async function multiplex() {
  const started = performance.now();
  await Promise.all([...Array(6).keys()].map((i) => fetch(`/slow?ms=300&n=${i}`)));
  const took = Math.round(performance.now() - started);
  document.getElementById("slow").textContent = `6 x 300 ms took ${took} ms`;
}

// What the application saw of this request's priority (RFC 9218 and 7540).
async function priority() {
  const response = await fetch("/priority", { priority: "high" });
  document.getElementById("priority").textContent = JSON.stringify(await response.json(), null, 2);
}

multiplex();
priority();
