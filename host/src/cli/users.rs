//! `gantry user`: accounts of a daemon in mode `users`, made by whoever owns it. The first admin
//! is made here, over the daemon's Unix socket (where its owner, or root for a system daemon, is
//! an admin), rather than by the first stranger to reach `/auth/register`.

use super::client::Client;
use gantry::auth::users::random_hex;
use gantry::auth::User;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use std::io::BufRead;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create an account. Without --password-stdin a password is generated and printed once.
    Add(AddArgs),
    /// List the accounts.
    List,
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Viewer,
    User,
    Admin,
}

#[derive(Args)]
pub struct AddArgs {
    /// The account's e-mail, its login name.
    email: String,
    /// Make it an admin (the same as --role admin).
    #[arg(long, conflicts_with = "role")]
    admin: bool,
    #[arg(long, value_enum, default_value = "user")]
    role: RoleArg,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
    /// The Unix user the account acts as (its jobs run as them on a system daemon).
    #[arg(long)]
    unix_user: Option<String>,
}

pub fn run(client: &Client, command: UserCommand) -> anyhow::Result<ExitCode> {
    match command {
        UserCommand::Add(args) => add(client, args),
        UserCommand::List => list(client),
    }
}

fn add(client: &Client, args: AddArgs) -> anyhow::Result<ExitCode> {
    let (password, generated) = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        (line.trim_end_matches(['\r', '\n']).to_string(), false)
    } else {
        (random_hex(12), true)
    };
    let role = match (args.admin, args.role) {
        (true, _) | (_, RoleArg::Admin) => "admin",
        (_, RoleArg::User) => "user",
        (_, RoleArg::Viewer) => "viewer",
    };
    let user: User = client.post("/api/v1/users", &json!({ "email": args.email, "password": password, "role": role }))?;
    if let Some(unix_user) = args.unix_user {
        let _: User = client.patch(&format!("/api/v1/users/{}", user.id), &json!({ "unix_user": unix_user }))?;
    }
    println!("{} ({}, id {})", user.email, role, user.id);
    if generated {
        println!("password: {password}  (shown once; change it with PATCH /auth/users/me)");
    }
    Ok(ExitCode::SUCCESS)
}

fn list(client: &Client) -> anyhow::Result<ExitCode> {
    let users: Vec<User> = client.get("/api/v1/users")?;
    println!("{:<32} {:<8} {:<7} {:<12} ID", "EMAIL", "ROLE", "ACTIVE", "UNIX USER");
    for u in users {
        println!("{:<32} {:<8} {:<7} {:<12} {}", u.email, u.role.as_str(), u.is_active, u.unix_user.as_deref().unwrap_or("-"), u.id);
    }
    Ok(ExitCode::SUCCESS)
}
