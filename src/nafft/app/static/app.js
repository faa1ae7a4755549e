// The page of `nafft serve`: uploads files to /api/jobs, follows each job, shows before/after and the download.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
let info = null;

async function init() {
  info = await (await fetch("/api/info")).json();
  const select = $("#model");
  for (const model of info.models) {
    const option = new Option(model.title, model.id, false, model.id === info.default_model);
    option.title = model.summary;
    select.add(option);
  }
  const showSummary = () => {
    const model = info.models.find((m) => m.id === select.value);
    $("#model-summary").textContent = model ? model.summary : "";
  };
  select.addEventListener("change", showSummary);
  showSummary();
  const strength = $("#strength");
  const auto = $("#auto");
  const showStrength = () => {
    const model = info.models.find((m) => m.id === select.value);
    const guarded = Boolean(model && model.guard);
    auto.disabled = !guarded;
    $("#auto-hint").hidden = !guarded;
    const ceiling = guarded ? model.guard_ceiling : null;
    $("#auto-ceiling").textContent = ceiling !== null && ceiling < 1 ? ` (at most ${Number(ceiling).toFixed(2)})` : "";
    strength.disabled = guarded && auto.checked;
    $("#strength-value").textContent = strength.disabled ? "auto" : Number(strength.value).toFixed(2);
  };
  strength.addEventListener("input", showStrength);
  auto.addEventListener("change", showStrength);
  select.addEventListener("change", showStrength);
  showStrength();
  $("#limits").textContent = `PNG, JPEG, TIFF, WebP or BMP, 8 or 16 bits, up to ${info.max_megapixels} ` +
    `megapixel${info.max_megapixels === 1 ? "" : "s"}; ` +
    "the download keeps the format, bit depth and metadata.";
  const drop = $("#drop");
  const files = $("#files");
  files.addEventListener("change", () => { [...files.files].forEach((file) => submit(file)); files.value = ""; });
  drop.addEventListener("keydown", (event) => { if (event.key === "Enter" || event.key === " ") files.click(); });
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (event) => { event.preventDefault(); drop.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) {
    drop.addEventListener(type, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    [...event.dataTransfer.files].forEach((file) => submit(file));
  });
  refreshQueue();
  setInterval(refreshQueue, 1500);
}

async function refreshQueue() {
  try {
    const counts = await (await fetch("/api/queue")).json();
    const device = info ? info.device : "";
    $("#queue-status").textContent = `queue: ${counts.running} deblurring, ${counts.waiting} waiting ` +
      `(one image at a time on ${device})`;
  } catch (error) {
    $("#queue-status").textContent = "the server does not answer";
  }
}

function inLine(n) {
  if (n <= 1) return "next in line";
  const suffixes = ["th", "st", "nd", "rd"];
  const v = n % 100;
  return `${n}${suffixes[(v - 20) % 10] || suffixes[v] || suffixes[0]} in line`;
}

function newCard(file, model, strength) {
  const card = $("#job-template").content.firstElementChild.cloneNode(true);
  $(".job-name", card).textContent = file.name;
  const title = info.models.find((m) => m.id === model)?.title ?? model;
  $(".job-settings", card).textContent =
    `${title}, strength ${strength === "auto" ? "auto" : Number(strength).toFixed(2)}`;
  $("#jobs").prepend(card);
  const compare = $(".compare", card);
  $(".divider", card).addEventListener("input", (event) => compare.style.setProperty("--pos", `${event.target.value}%`));
  $(".actual-size", card).addEventListener("change", (event) => card.classList.toggle("actual", event.target.checked));
  $(".again", card).addEventListener("click", () => submit(file));
  return card;
}

function setStatus(card, state, text) {
  card.dataset.state = state;
  $(".job-status", card).textContent = text;
}

function submit(file) {
  const model = $("#model").value;
  const strength = $("#strength").disabled ? "auto" : $("#strength").value;
  const card = newCard(file, model, strength);
  const progress = $(".job-progress", card);
  const query = new URLSearchParams({ name: file.name, model, strength });
  const request = new XMLHttpRequest();
  request.open("POST", `/api/jobs?${query}`);
  request.upload.addEventListener("progress", (event) => {
    if (!event.lengthComputable) return;
    progress.hidden = false;
    progress.value = event.loaded / event.total;
    setStatus(card, "uploading", `uploading: ${Math.round(100 * event.loaded / event.total)}%`);
  });
  request.addEventListener("load", () => {
    progress.hidden = true;
    let body = null;
    try { body = JSON.parse(request.responseText); } catch (error) { /* not JSON: said below */ }
    if (request.status !== 202 || !body) {
      setStatus(card, "error", body && body.error ? body.error : `${file.name}: the server answered ${request.status}`);
      return;
    }
    refreshQueue();
    follow(card, body.id);
  });
  request.addEventListener("error", () => setStatus(card, "error", `${file.name}: the upload failed`));
  setStatus(card, "uploading", "uploading");
  request.send(file);
}

async function follow(card, id) {
  const progress = $(".job-progress", card);
  for (;;) {
    let job;
    try {
      const response = await fetch(`/api/jobs/${id}`);
      job = await response.json();
      if (!response.ok) { setStatus(card, "error", job.error); return; }
    } catch (error) {
      setStatus(card, "error", "the server does not answer");
      return;
    }
    card.dataset.job = id;
    if (job.state === "queued") {
      setStatus(card, "queued", `waiting: ${inLine(job.position)}`);
    } else if (job.state === "running") {
      const tiled = job.tiles > 0;
      progress.hidden = !tiled;
      if (tiled) progress.value = job.tiles_done / job.tiles;
      setStatus(card, "running", tiled
        ? `deblurring ${job.width}x${job.height}: tile ${job.tiles_done} of ${job.tiles}, ${job.seconds} s`
        : `deblurring ${job.width}x${job.height}: ${job.seconds} s`);
    } else if (job.state === "error") {
      progress.hidden = true;
      setStatus(card, "error", job.message);
      refreshQueue();
      return;
    } else if (job.state === "done") {
      progress.hidden = true;
      await showResult(card, job);
      refreshQueue();
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 400));
  }
}

async function showResult(card, job) {
  const loaded = (img, src) => new Promise((resolve) => { img.onload = img.onerror = resolve; img.src = src; });
  await Promise.all([loaded($(".before", card), `/api/jobs/${job.id}/before`),
                     loaded($(".after", card), `/api/jobs/${job.id}/after`)]);
  const link = $(".download", card);
  link.href = `/api/jobs/${job.id}/result`;
  link.download = job.download_name;
  const format = job.download_name.split(".").pop().toUpperCase();
  link.textContent = `Download ${job.download_name} (${format}, ${job.bit_depth}-bit, ${job.width}x${job.height})`;
  $(".result", card).hidden = false;
  if (job.strength === "auto" && job.applied_strength !== null) {
    const title = info.models.find((m) => m.id === job.model)?.title ?? job.model;
    $(".job-settings", card).textContent = `${title}, strength ${job.applied_strength.toFixed(2)} (automatic)`;
  }
  setStatus(card, "done", `done in ${job.message}`);
}

init();
