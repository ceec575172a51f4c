// Live dashboard: renders the server's snapshot and re-renders on each one pushed over the WebSocket.
// No framework, no build step. Text is always set with textContent: signal reasons come from outside.
"use strict";

(function () {
  const root = document.getElementById("dashboard");
  if (!root) return;
  const accountsBox = document.getElementById("dash-accounts");
  const eventsBox = document.getElementById("dash-events");
  const connection = document.getElementById("dash-connection");
  const updated = document.getElementById("dash-updated");
  const MAX_EVENTS = 50;
  const previousPositions = new Map(); // position key -> what was shown, to flash the rows that change
  let rendered = false;

  // --- formatting ------------------------------------------------------------------------------

  const number = new Intl.NumberFormat("en-US", { maximumFractionDigits: 8 });
  const money = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });

  function fmt(value) {
    return value === null || value === undefined || value === "" ? "–" : number.format(Number(value));
  }

  function fmtMoney(value, signed) {
    if (value === null || value === undefined) return "–";
    const n = Number(value);
    const text = money.format(n);
    return signed && n > 0 ? "+" + text : text;
  }

  function sign(value) {
    const n = Number(value);
    return n > 0 ? "dash-pos" : n < 0 ? "dash-neg" : "";
  }

  function fmtTime(iso) {
    if (!iso) return "–";
    const date = new Date(iso);
    const sameDay = date.toDateString() === new Date().toDateString();
    return sameDay ? date.toLocaleTimeString() : date.toLocaleString();
  }

  // --- DOM helpers -----------------------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(name, value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function chip(status, label) {
    return el("span", { class: "dash-chip dash-chip-" + status }, label || status);
  }

  function table(headers, rows, empty) {
    if (!rows.length) return el("p", { class: "dash-muted" }, empty);
    const head = el("tr", {}, headers.map(([label, cls]) => el("th", { class: cls }, label)));
    return el("table", {}, el("thead", {}, head), el("tbody", {}, rows));
  }

  // --- rendering -------------------------------------------------------------------------------

  function figure(label, value, cls) {
    return el("div", { class: "dash-figure" },
      el("span", { class: "dash-label" }, label),
      el("span", { class: "dash-value " + (cls || "") }, value));
  }

  function balance(account) {
    const b = account.balance;
    if (!b) return el("p", { class: "dash-muted" }, "No balance read yet.");
    return el("div", { class: "dash-balance" },
      figure("Equity (" + b.asset + ")", fmtMoney(b.equity)),
      figure("Available", fmtMoney(b.available)),
      figure("Unrealized PnL", fmtMoney(b.unrealized_pnl, true), sign(b.unrealized_pnl)),
      figure("Used margin", fmtMoney(b.used_margin)),
      figure("As of", fmtTime(b.taken_at)));
  }

  function protection(position) {
    const parts = [];
    if (position.stop_loss) parts.push("SL " + fmt(position.stop_loss));
    if (position.trailing_stop) parts.push("trail " + fmt(position.trailing_stop));
    const sl = parts.length ? parts.join(", ") : "no SL";
    const tp = position.take_profits.length ? "TP " + position.take_profits.map(fmt).join(" / ") : "no TP";
    return [el("div", { class: position.stop_loss || position.trailing_stop ? "" : "dash-neg" }, sl), el("div", {}, tp)];
  }

  function positions(account) {
    const rows = account.positions.map((p) => {
      const key = account.id + ":" + p.symbol + ":" + p.side;
      const signature = [p.qty, p.mark_price, p.unrealized_pnl, p.stop_loss, p.take_profits.join()].join("|");
      const changed = previousPositions.has(key) && previousPositions.get(key) !== signature;
      const isNew = rendered && !previousPositions.has(key);
      previousPositions.set(key, signature);
      return el("tr", {
        class: "dash-position" + (changed || isNew ? " dash-flash" : ""),
        dataset: { account: account.name, symbol: p.symbol, side: p.side },
      },
        el("td", {}, p.symbol),
        el("td", { class: "dash-" + p.side }, p.side.toUpperCase()),
        el("td", { class: "num" }, fmt(p.qty)),
        el("td", { class: "num" }, fmt(p.entry_price)),
        el("td", { class: "num" }, fmt(p.mark_price)),
        el("td", { class: "num " + sign(p.unrealized_pnl) },
          fmtMoney(p.unrealized_pnl, true), p.roe_pct !== null ? " (" + fmtMoney(p.roe_pct, true) + "%)" : ""),
        el("td", {}, p.leverage + "x " + p.margin_mode),
        el("td", {}, protection(p)),
        el("td", { class: "num" }, fmt(p.liquidation_price)),
        el("td", {}, fmtTime(p.opened_at)));
    });
    return table(
      [["Symbol"], ["Side"], ["Qty", "num"], ["Entry", "num"], ["Mark", "num"], ["Unrealized PnL", "num"],
        ["Leverage"], ["SL / TP"], ["Liq. price", "num"], ["Opened"]],
      rows, "No open positions.");
  }

  function orders(account) {
    const rows = account.open_orders.map((o) => el("tr", { class: "dash-order", dataset: { clientOrderId: o.client_order_id } },
      el("td", {}, o.symbol),
      el("td", { class: "dash-" + o.side }, o.side.toUpperCase()),
      el("td", {}, o.purpose_label),
      el("td", {}, o.type_label + (o.reduce_only ? " (reduce-only)" : "")),
      el("td", { class: "num" }, fmt(o.filled_qty) + " / " + fmt(o.qty)),
      el("td", { class: "num" }, fmt(o.price)),
      el("td", { class: "num" }, fmt(o.trigger_price)),
      el("td", {}, o.status_label),
      el("td", {}, fmtTime(o.created_at))));
    return table(
      [["Symbol"], ["Side"], ["Purpose"], ["Type"], ["Filled / qty", "num"], ["Price", "num"], ["Trigger", "num"],
        ["Status"], ["Created"]],
      rows, "No open orders.");
  }

  function signals(account) {
    const rows = account.signals.map((s) => el("tr", { class: "dash-signal", dataset: { signalId: s.id } },
      el("td", {}, fmtTime(s.received_at)),
      el("td", {}, "#" + s.id),
      el("td", {}, s.symbol || "–"),
      el("td", { class: "dash-" + s.action }, s.action || "–"),
      el("td", {}, s.strategy || ""),
      el("td", { class: "dash-status-" + s.status }, s.status_label),
      el("td", {}, s.reason || "")));
    return table([["Received"], ["Signal"], ["Symbol"], ["Action"], ["Strategy"], ["Stage"], ["Reason"]],
      rows, "No signals yet.");
  }

  function health(account) {
    const exchange = account.health.exchange;
    const stream = account.health.stream;
    const streamNote = stream.last_event_at ? " (last event " + fmtTime(stream.last_event_at) + ")" : "";
    return el("div", { class: "dash-health" },
      el("span", { title: exchange.detail || "" }, "Exchange: ", chip(exchange.status)),
      el("span", { title: stream.detail || "" }, "Stream: ", chip(stream.status), streamNote));
  }

  function accountSection(account) {
    return el("section", { class: "dash-account", dataset: { account: account.name } },
      el("h2", {},
        account.name,
        chip("mode-" + account.mode, account.mode_label),
        account.trading_enabled ? chip("ok", "trading on") : chip("off", "kill switch on"),
        chip(account.auto_trade ? "ok" : "n/a", account.auto_trade ? "auto-trade" : "manual approval")),
      health(account),
      balance(account),
      el("h3", {}, "Open positions"), positions(account),
      el("h3", {}, "Open orders"), orders(account),
      el("h3", {}, "Latest signals"), signals(account));
  }

  function render(snapshot) {
    const seen = new Set();
    const sections = snapshot.accounts.map((account) => {
      account.positions.forEach((p) => seen.add(account.id + ":" + p.symbol + ":" + p.side));
      return accountSection(account);
    });
    for (const key of [...previousPositions.keys()]) if (!seen.has(key)) previousPositions.delete(key);
    accountsBox.replaceChildren(...(sections.length ? sections : [el("p", {}, "No active trading accounts.")]));
    updated.textContent = fmtTime(snapshot.generated_at);
    updated.dataset.generatedAt = snapshot.generated_at;
    const work = snapshot.worker;
    const workerChip = chip(work.status);
    workerChip.id = "dash-worker";
    workerChip.title = [work.detail, work.last_sweep_at ? "last sweep " + fmtTime(work.last_sweep_at) : ""]
      .filter(Boolean).join("; ");
    document.getElementById("dash-worker").replaceWith(workerChip);
    rendered = true;
  }

  function addEvents(events) {
    if (!events.length) return;
    if (eventsBox.querySelector(".dash-muted")) eventsBox.replaceChildren();
    const now = new Date().toLocaleTimeString();
    for (const event of events) {
      const text = [event.account, event.symbol, event.action, event.status, event.reason || event.summary || event.message || event.rule]
        .filter(Boolean).join(" · ");
      const cls = /^(alerts\.|risk\.|signals\.(rejected|failed))/.test(event.topic) ? "dash-neg" : "";
      eventsBox.prepend(el("li", {}, now + " ", el("strong", { class: cls }, event.topic), text ? " " + text : ""));
    }
    while (eventsBox.children.length > MAX_EVENTS) eventsBox.lastElementChild.remove();
  }

  // --- the WebSocket ---------------------------------------------------------------------------

  function setConnection(status, label) {
    connection.className = "dash-chip dash-chip-" + status;
    connection.textContent = label;
  }

  let retryDelay = 1000;

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + root.dataset.websocketPath);
    socket.onopen = () => {
      retryDelay = 1000;
      setConnection("connected", "live");
    };
    socket.onmessage = (message) => {
      const data = JSON.parse(message.data);
      if (data.type !== "snapshot") return;
      render(data.snapshot);
      addEvents(data.events || []);
    };
    socket.onclose = () => {
      setConnection("reconnecting", "reconnecting…");
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 15000);
    };
  }

  const initial = document.getElementById("dashboard-snapshot");
  if (initial) render(JSON.parse(initial.textContent));
  connect();
})();
