//! `gossipnet network ...`: the whole network as one node's crawl sees it
//! (status, size, graph), a new network's config (`init`), and the
//! admin-signed shutdown.

use super::*;

/// `gossipnet network ...`.
#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Crawl the network from a node: nodes, links, degrees, components,
    /// diameter, unreachable nodes.
    Status(Target),
    /// The exact node count from a crawl beside the gossip estimate.
    Size(Target),
    /// The crawled topology as JSON, Graphviz DOT or a rendered SVG.
    Graph(GraphArgs),
    /// Write a new network's config and its admin key.
    Init(InitArgs),
    /// Shut the whole network down with a command signed by its admin key.
    Shutdown(ShutdownArgs),
}

/// The picture formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    /// The topology as JSON (the crawl's own form).
    Json,
    /// Graphviz DOT.
    Dot,
    /// An SVG picture laid out and drawn by gossipnet.
    Svg,
}

/// `gossipnet network graph`.
#[derive(Debug, Args)]
pub struct GraphArgs {
    #[command(flatten)]
    target: Target,
    /// Output format.
    #[arg(long, value_enum, default_value = "svg")]
    format: GraphFormat,
    /// Write to this file instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Seed of the layout (the same seed draws the same picture).
    #[arg(long, default_value_t = 1)]
    layout_seed: u64,
}

/// `gossipnet network init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The network's name: its id, and the stem of the files written.
    name: String,
    /// Directory to write NAME.toml, NAME.admin.key (and NAME.psk) into.
    #[arg(long, value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// Make the network private: write a pre-shared key that every node
    /// needs.
    #[arg(long)]
    psk: bool,
    /// A seed node, as HOST:PORT. Repeatable.
    #[arg(long = "seed", value_name = "HOST:PORT")]
    seeds: Vec<String>,
    /// Overwrite existing files.
    #[arg(long)]
    force: bool,
}

/// `gossipnet network shutdown`.
#[derive(Debug, Args)]
pub struct ShutdownArgs {
    #[command(flatten)]
    target: Target,
    /// The admin secret key file (written by `network init`).
    #[arg(long, value_name = "FILE", required_unless_present = "command")]
    admin_key: Option<PathBuf>,
    /// The network id the command is for (default: the node's own, from
    /// its status).
    #[arg(long)]
    network_id: Option<String>,
    /// Only sign: write the command to this file instead of sending it
    /// (send it later, from any node, with --command).
    #[arg(long, value_name = "FILE", requires = "admin_key")]
    save: Option<PathBuf>,
    /// Send a command signed earlier (with --save).
    #[arg(long, value_name = "FILE", conflicts_with = "admin_key")]
    command: Option<PathBuf>,
}

/// `gossipnet network ...`.
pub fn network(command: NetworkCommand) -> Result<()> {
    match command {
        NetworkCommand::Status(target) => {
            let topology = Client::connect(&target)?.crawl()?;
            let summary = graph::summarize(&topology);
            if target.json {
                return print_json(&summary);
            }
            out!("{}", graph::render_text(&summary));
            Ok(())
        }
        NetworkCommand::Size(target) => {
            let client = Client::connect(&target)?;
            let topology = client.crawl()?;
            let summary = graph::summarize(&topology);
            let status = client.get("/api/status")?;
            let estimate = status["size_estimate"].as_f64();
            if target.json {
                return print_json(&json!({
                    "nodes": summary.nodes,
                    "estimate": estimate,
                    "seeds": summary.seeds,
                    "unreachable": summary.unreachable.len(),
                }));
            }
            outln!("nodes     {} (crawled)", summary.nodes);
            match estimate {
                Some(e) => {
                    let off = if summary.nodes > 0 {
                        format!(
                            " ({:+.0}%)",
                            (e - summary.nodes as f64) / summary.nodes as f64 * 100.0
                        )
                    } else {
                        String::new()
                    };
                    outln!("estimate  {e:.1} (gossip){off}");
                }
                None => outln!("estimate  not yet (the first estimate takes a minute)"),
            }
            if summary.seeds > 0 {
                outln!("seeds     {}", summary.seeds);
            }
            if !summary.unreachable.is_empty() {
                outln!("unreachable {}", summary.unreachable.len());
            }
            Ok(())
        }
        NetworkCommand::Graph(args) => graph_command(args),
        NetworkCommand::Init(args) => init(args),
        NetworkCommand::Shutdown(args) => shutdown(args),
    }
}

fn graph_command(args: GraphArgs) -> Result<()> {
    let topology = Client::connect(&args.target)?.crawl()?;
    let text = match args.format {
        GraphFormat::Json => serde_json::to_string_pretty(&topology)? + "\n",
        GraphFormat::Dot => graph::to_dot(&topology),
        GraphFormat::Svg => graph::to_svg(&topology, args.layout_seed),
    };
    match &args.output {
        Some(path) => {
            std::fs::write(path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            let s = graph::summarize(&topology);
            eprintln!(
                "wrote {} ({} nodes, {} links)",
                path.display(),
                s.nodes,
                s.links
            );
        }
        None => out!("{text}"),
    }
    Ok(())
}

/// `gossipnet network init NAME`.
fn init(args: InitArgs) -> Result<()> {
    let name = &args.name;
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        bail!("the network name must be 1 to 64 letters, digits, '-', '_' or '.'");
    }
    for seed in &args.seeds {
        match seed.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
            _ => bail!("--seed '{seed}' is not HOST:PORT"),
        }
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let config_path = args.dir.join(format!("{name}.toml"));
    let key_path = args.dir.join(format!("{name}.admin.key"));
    let psk_path = args.dir.join(format!("{name}.psk"));
    if !args.force {
        for path in [&config_path, &key_path]
            .into_iter()
            .chain(args.psk.then_some(&psk_path))
        {
            if path.exists() {
                bail!(
                    "{} exists; pass --force to overwrite it (an old admin key stops working)",
                    path.display()
                );
            }
        }
    }
    let admin = SecretKey::generate(&mut rand::rngs::OsRng);
    write_secret(
        &key_path,
        &data_encoding::HEXLOWER.encode(&admin.to_bytes()),
    )?;
    if args.psk {
        let psk: [u8; 32] = rand::random();
        write_secret(&psk_path, &data_encoding::HEXLOWER.encode(&psk))?;
    }
    let mut config = String::new();
    config.push_str(&format!(
        "# The network '{name}'. Give this file to every node: gossipnet node --config {name}.toml\n"
    ));
    config.push_str(&format!("network_id = {}\n", toml_string(name)));
    if args.psk {
        config.push_str(&format!(
            "# Private network: every node needs this key file too.\npsk_file = {}\n",
            toml_string(&format!("{name}.psk"))
        ));
    }
    config
        .push_str("# Nodes obey a shutdown command only when it is signed by one of these keys.\n");
    config.push_str(&format!(
        "admin_keys = [{}]\n",
        toml_string(&admin.node_id().to_string())
    ));
    let seeds: Vec<String> = args.seeds.iter().map(|s| toml_string(s)).collect();
    config.push_str(&format!("seeds = [{}]\n", seeds.join(", ")));
    std::fs::write(&config_path, config)
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    outln!("wrote {}", config_path.display());
    if args.psk {
        outln!(
            "wrote {} (mode 600: give it to every node, privately)",
            psk_path.display()
        );
    }
    outln!(
        "wrote {} (mode 600: keep it secret; it can shut the network down)",
        key_path.display()
    );
    outln!("admin key {}", admin.node_id());
    Ok(())
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Writes a secret as one hex line, readable by its owner only.
fn write_secret(path: &Path, hex: &str) -> Result<()> {
    gossipnet_node::write_private(path, format!("{hex}\n").as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Reads an admin key file (as `network init` writes it).
fn read_secret(path: &Path) -> Result<SecretKey> {
    let bytes = crate::util::read_hex32(path, "admin key file")?;
    Ok(SecretKey::from_bytes(&bytes))
}

/// `gossipnet network shutdown`.
fn shutdown(args: ShutdownArgs) -> Result<()> {
    let command = match (&args.admin_key, &args.command) {
        (_, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the command file {}", path.display()))?
            .trim()
            .to_string(),
        (Some(key), None) => {
            let admin = read_secret(key)?;
            let network_id = match &args.network_id {
                Some(id) => id.clone(),
                None if args.save.is_some() => bail!("--save needs --network-id"),
                None => {
                    let client = Client::connect(&args.target)?;
                    network_id_of(&client)?
                }
            };
            let now = gossipnet_node::time::unix_ms();
            let bytes = gossipnet_node::admin::sign_shutdown(&admin, &network_id, now)?;
            data_encoding::HEXLOWER.encode(&bytes)
        }
        (None, None) => bail!(
            "a shutdown must be signed: pass --admin-key FILE (written by `gossipnet network init`)"
        ),
    };
    if let Some(path) = &args.save {
        write_secret(path, &command)?;
        outln!("wrote the signed command to {}", path.display());
        return Ok(());
    }
    let client = Client::connect(&args.target)?;
    let answer = client.post("/api/shutdown", json!({ "command": command }))?;
    if args.target.json {
        return print_json(&answer);
    }
    outln!(
        "shutdown command {} sent; every node that accepts it leaves within seconds",
        answer["id"].as_str().unwrap_or("")
    );
    Ok(())
}

/// The network id of the node.
fn network_id_of(client: &Client) -> Result<String> {
    let status = client.get("/api/status")?;
    status["network_id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("the node did not say its network id; pass --network-id"))
}
